# expect: accepted
# tasks: smac_3m
"""SMAX 3m: agents weighted by their normalised health (columns 0:3 per the card); dead agents keep a small floor weight."""
import torch


def QLLMNetwork(agents_q, global_state):
    health = global_state[:, 0:3]  # [B, 3] ally_health
    alive = torch.where(health > 0.0, torch.ones_like(health), torch.zeros_like(health))
    weights = torch.softmax(health * 3.0, dim=-1) * 3.0 * alive + 0.01  # [B, 3] > 0
    return (weights * agents_q).sum(dim=-1, keepdim=True)
