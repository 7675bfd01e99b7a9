# expect: accepted
# tasks: smac_3m
# style: math constants and softplus temperature
import math

import torch
import torch.nn.functional as F

TAU = 1.4142135623730951  # math.sqrt(2): module-level code may not call


def QLLMNetwork(agents_q, global_state):
    n = agents_q.shape[-1]
    tau = math.sqrt(TAU * TAU)
    w = F.softplus(global_state[:, :n] * tau) + math.e * 0.01  # [B, N] > 0
    w = w / w.mean(dim=-1, keepdim=True)
    return torch.sum(w * agents_q, dim=-1, keepdim=True)
