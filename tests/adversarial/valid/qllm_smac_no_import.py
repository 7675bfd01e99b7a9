# expect: accepted
# tasks: smac_3m
# style: QLLM style for SMAC without an import: health and alive mask from the card columns
def QLLMNetwork(agents_q, global_state):
    n_agents = agents_q.shape[1]
    ally_health = global_state[:, :n_agents]  # [B, N]
    alive_mask = (ally_health > 0).float()
    weights = 1.0 + ally_health * alive_mask
    weights = weights / torch.sum(weights, dim=1, keepdim=True) * n_agents
    return torch.sum(weights * agents_q, dim=1, keepdim=True)
