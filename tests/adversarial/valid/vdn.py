# expect: accepted
# tasks: *
"""VDN: Q_tot = sum_i Q_i (the simplest monotone credit function)."""
import torch


def QLLMNetwork(agents_q, global_state):
    return agents_q.sum(dim=-1, keepdim=True)
