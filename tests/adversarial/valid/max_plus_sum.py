# expect: accepted
# tasks: *
"""Sum plus a bonus on the best agent's value: monotone, rewards coordination on the best action."""
import torch


def QLLMNetwork(agents_q, global_state):
    best = agents_q.max(dim=1, keepdim=True).values  # [B, 1]
    return agents_q.sum(dim=-1, keepdim=True) + 0.5 * best
