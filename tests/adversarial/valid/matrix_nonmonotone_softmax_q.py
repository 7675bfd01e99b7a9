# expect: accepted
# tasks: matrix_climbing,matrix_penalty
"""For the matrix games (IGM not required): weights from a softmax over the agents' own Q values."""
import torch


def QLLMNetwork(agents_q, global_state):
    weights = torch.softmax(agents_q / 10.0, dim=-1) * agents_q.shape[1]  # [B, N]
    return (weights * agents_q).sum(dim=-1, keepdim=True) * global_state[:, :1]
