# expect: accepted
# tasks: smac_3m
# style: import torch.nn.functional as F, F.softmax / F.relu
import torch
import torch.nn.functional as F


def QLLMNetwork(agents_q, global_state):
    n = agents_q.size(1)
    scores = F.relu(global_state[:, :n]) + 0.1  # [B, N] > 0
    weights = F.softmax(scores, dim=-1) * n
    return torch.sum(weights * agents_q, dim=-1, keepdim=True)
