# expect: accepted
# tasks: smac_3m,mpe_simple_spread
# style: underscore helpers and constants, as Claude-style code often has
import torch

_EPS = 1e-6
_TEMPERATURE = 2.0


def _normalise(x):
    """Scale rows to mean 1 (keeps the VDN scale)."""
    return x / (x.mean(dim=-1, keepdim=True) + _EPS)


def _state_scores(global_state, n_agents):
    cols = global_state[:, :n_agents]  # [B, N]
    return torch.softmax(torch.tanh(cols) * _TEMPERATURE, dim=-1)


def QLLMNetwork(agents_q, global_state):
    n_agents = agents_q.shape[1]
    weights = _normalise(_state_scores(global_state, n_agents) + 0.1)  # [B, N] > 0
    return (weights * agents_q).sum(dim=-1, keepdim=True)  # [B, 1]
