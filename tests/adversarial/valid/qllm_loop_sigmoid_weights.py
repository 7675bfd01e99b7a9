# expect: accepted
# tasks: *
"""QLLM style: a loop over agents, one state-dependent non-negative weight per agent."""
import torch


def QLLMNetwork(agents_q, global_state):
    n_agents = agents_q.shape[1]
    state_dim = global_state.shape[1]
    q_tot = torch.zeros_like(agents_q[:, 0:1])
    for i in range(n_agents):
        feature = global_state[:, i % state_dim].unsqueeze(-1)  # [B, 1]
        weight = torch.sigmoid(feature) + 0.1  # [B, 1], > 0 keeps IGM
        q_tot = q_tot + weight * agents_q[:, i:i + 1]
    return q_tot
