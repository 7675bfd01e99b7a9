# expect: accepted
# tasks: mpe_simple_spread
# style: min/max normalisation of a state feature, clamp
import torch


def QLLMNetwork(agents_q, global_state):
    n = agents_q.shape[1]
    f = global_state[:, :n]
    lo = f.min(dim=1, keepdim=True).values
    hi = f.max(dim=1, keepdim=True).values
    norm = ((f - lo) / (hi - lo + 1e-6)).clamp(0.0, 1.0)  # [B, N] in [0, 1]
    return ((0.5 + norm) * agents_q).sum(dim=1, keepdim=True)
