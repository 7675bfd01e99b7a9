# expect: accepted
# tasks: lbf_2s-8x8-2p-2f-coop,lbf_8x8-2p-3f
# style: QLLM published style for LBF: no import (QLLM's frame supplies torch), per-agent loop, distances to food
def QLLMNetwork(agents_q, global_state):
    # Level-based foraging: agents near food get more credit, every agent keeps a positive weight.
    batch_size = global_state.shape[0]
    n_agents = agents_q.shape[1]
    food_pos = global_state[:, 0:2]  # [B, 2] first food (x, y)
    weights = torch.ones(batch_size, n_agents, device=agents_q.device)
    for i in range(n_agents):
        agent_pos = global_state[:, 6 + 3 * i:8 + 3 * i]  # [B, 2]
        dist = torch.abs(agent_pos - food_pos).sum(dim=1)  # [B]
        weights[:, i] = 1.0 + 1.0 / (1.0 + dist)
    weights = weights / weights.sum(dim=1, keepdim=True) * n_agents
    q_tot = torch.sum(weights * agents_q, dim=1, keepdim=True)
    return q_tot
