# expect: accepted
# tasks: *
"""torch.where masks: agents whose state feature is positive count twice as much."""
import torch


def helper_weights(global_state, n_agents):
    cols = [global_state[:, i % global_state.shape[1]] for i in range(n_agents)]
    feats = torch.stack(cols, dim=1)  # [B, N]
    return torch.where(feats > 0.0, torch.full_like(feats, 2.0), torch.ones_like(feats))


def QLLMNetwork(agents_q, global_state):
    weights = helper_weights(global_state, agents_q.shape[1])
    return (weights * agents_q).sum(dim=-1, keepdim=True)
