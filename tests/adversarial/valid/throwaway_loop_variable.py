# expect: accepted
# tasks: matrix_climbing,smac_3m
# style: '_' as a throwaway loop variable
import torch


def QLLMNetwork(agents_q, global_state):
    q = agents_q
    scale = torch.ones_like(agents_q[:, :1])  # [B, 1]
    for _ in range(3):
        scale = 0.5 * (scale + 1.0)
    return scale * q.sum(dim=-1, keepdim=True)
