# expect: accepted
# tasks: mpe_simple_spread
# style: several typed helpers calling each other
import torch
from torch import Tensor


def landmark_distance(global_state: Tensor, n_agents: int) -> Tensor:
    return torch.abs(global_state[:, :n_agents]) + 1.0  # [B, N] >= 1


def inverse_distance_weights(global_state: Tensor, n_agents: int) -> Tensor:
    inv = 1.0 / landmark_distance(global_state, n_agents)  # [B, N] in (0, 1]
    return inv / inv.sum(dim=-1, keepdim=True) * n_agents


def QLLMNetwork(agents_q: Tensor, global_state: Tensor) -> Tensor:
    w = inverse_distance_weights(global_state, agents_q.shape[-1])
    return (w * agents_q).sum(-1, keepdim=True)
