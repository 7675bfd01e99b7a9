# expect: accepted
# tasks: mpe_simple_spread
# style: argmin + gather: the agent closest to the first landmark gets a bonus
import torch


def QLLMNetwork(agents_q, global_state):
    n = agents_q.shape[1]
    dist = torch.abs(global_state[:, :n])  # [B, N]
    closest = torch.argmin(dist, dim=1, keepdim=True)  # [B, 1]
    picked = torch.gather(agents_q, 1, closest)  # [B, 1]
    return agents_q.sum(dim=1, keepdim=True) + 0.5 * picked
