# expect: accepted
# tasks: *
"""The way LLMs (and QLLM's published functions) tend to write it: type annotations, shape asserts,
explicit device/dtype arguments, torch.nn.functional by its full path, an epsilon from finfo."""
import torch
import torch.nn as nn


def compute_weights(global_state: torch.Tensor, n_agents: int) -> torch.Tensor:
    batch_size: int = global_state.shape[0]
    eps = torch.finfo(global_state.dtype).eps
    scores = torch.zeros(batch_size, n_agents, device=global_state.device, dtype=global_state.dtype)
    for i in range(n_agents):
        column = global_state[:, i % global_state.shape[1]]
        scores = scores + nn.functional.one_hot(torch.tensor(i), n_agents).to(global_state.dtype) * column.unsqueeze(-1)
    weights = nn.functional.softmax(scores, dim=-1)
    return weights / (weights.sum(dim=-1, keepdim=True) + eps) * n_agents


def QLLMNetwork(agents_q: torch.Tensor, global_state: torch.Tensor) -> torch.Tensor:
    assert agents_q.dim() == 2, "agents_q must be [B, N]"
    batch_size, n_agents = agents_q.shape
    weights = compute_weights(global_state, n_agents)  # [B, N], positive
    q_tot = torch.sum(agents_q * weights, dim=1, keepdim=True)  # [B, 1]
    return q_tot.view(batch_size, 1)
