# expect: accepted
# tasks: smac_3m
# style: local index assignment into a weight tensor inside an agent loop
import torch


def QLLMNetwork(agents_q, global_state):
    batch_size, n_agents = agents_q.shape
    w = torch.zeros(batch_size, n_agents, dtype=agents_q.dtype, device=agents_q.device)
    for i in range(n_agents):
        health = global_state[:, i]
        w[:, i] = torch.where(health > 0, 1.0 + health, torch.full_like(health, 0.1))
    return torch.sum(w * agents_q, dim=1, keepdim=True)
