# expect: accepted
# tasks: smac_3m
# style: list comprehension over agents then torch.stack
import torch


def QLLMNetwork(agents_q, global_state):
    n_agents = agents_q.shape[1]
    per_agent = [agents_q[:, i] * (1.0 + 0.5 * torch.tanh(global_state[:, i])) for i in range(n_agents)]
    return torch.stack(per_agent, dim=1).sum(dim=1, keepdim=True)
