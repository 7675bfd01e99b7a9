# expect: accepted
# tasks: *
"""Softmax attention over agents, keyed by the mean state: weights sum to N, depend on the state only."""
import torch
import torch.nn.functional as F

TEMPERATURE = 2.0


def QLLMNetwork(agents_q, global_state):
    n = agents_q.shape[1]
    context = torch.tanh(global_state.mean(dim=1, keepdim=True))  # [B, 1]
    keys = torch.linspace(-1.0, 1.0, n).unsqueeze(0)  # [1, N]
    weights = F.softmax(context * keys * TEMPERATURE, dim=-1) * n  # [B, N]
    return (weights * agents_q).sum(dim=-1, keepdim=True)
