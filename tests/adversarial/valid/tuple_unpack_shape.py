# expect: accepted
# tasks: matrix_penalty,smac_3m
# style: tuple unpacking of shapes, keyword arguments, reshape/view
import torch


def QLLMNetwork(agents_q, global_state):
    batch_size, n_agents = agents_q.shape
    flat = agents_q.reshape(batch_size, n_agents, 1)  # [B, N, 1]
    w = torch.ones(batch_size, n_agents, 1, dtype=agents_q.dtype, device=agents_q.device)
    return (flat * w).sum(dim=(1, 2)).view(batch_size, 1)
