# expect: accepted
# tasks: smac_3m
# style: dict and tuple constants at module level
import torch

WEIGHTS = {"alive": 1.0, "dead": 0.05}
HEALTH_COLUMNS = (0, 1, 2)


def QLLMNetwork(agents_q, global_state):
    health = global_state[:, HEALTH_COLUMNS[0]:HEALTH_COLUMNS[-1] + 1]  # [B, 3]
    alive = health > 0.0
    w = torch.where(alive, torch.full_like(health, WEIGHTS["alive"]), torch.full_like(health, WEIGHTS["dead"]))
    return (w * agents_q).sum(dim=-1, keepdim=True)
