"""The shared agent network (pymarl's RNNAgent): fc -> ReLU -> GRU -> fc, one set of weights for all agents.

Inputs per agent: its observation, optionally its previous action (one-hot) and its agent id (one-hot),
so parameter sharing can still tell agents apart. Training runs the GRU over whole episodes in one
`nn.GRU` call ([B*N, T+1, H]) instead of pymarl's per-step Python loop; acting steps it once per env
step for all E*N agents together.
"""

from __future__ import annotations

import torch
from torch import nn


def input_dim(obs_dim: int, n_agents: int, n_actions: int, agent_id: bool, last_action: bool) -> int:
    return obs_dim + (n_actions if last_action else 0) + (n_agents if agent_id else 0)


def build_inputs(obs: torch.Tensor, last_actions: torch.Tensor | None, n_actions: int,
                 agent_id: bool, last_action: bool) -> torch.Tensor:
    """Agent inputs for any leading shape.

    obs [..., N, O] float; last_actions [..., N] int64 (-1 = none, e.g. at t = 0) -> [..., N, D].
    """
    parts = [obs]
    n = obs.shape[-2]
    if last_action:
        assert last_actions is not None
        onehot = torch.zeros(*last_actions.shape, n_actions + 1, device=obs.device, dtype=obs.dtype)
        onehot.scatter_(-1, (last_actions + 1).clamp_min(0).unsqueeze(-1), 1.0)  # index 0 = "no action"
        parts.append(onehot[..., 1:])
    if agent_id:
        eye = torch.eye(n, device=obs.device, dtype=obs.dtype)  # [N, N]
        parts.append(eye.expand(*obs.shape[:-2], n, n))
    return torch.cat(parts, dim=-1)


class RNNAgent(nn.Module):
    """Q_i(tau_i, .) for every agent with shared weights.

    >>> agent = RNNAgent(input_size=5, n_actions=3, hidden=8)
    >>> q, h = agent.step(torch.zeros(4, 5), agent.initial_hidden(4))
    >>> q.shape, h.shape
    (torch.Size([4, 3]), torch.Size([4, 8]))
    """

    def __init__(self, input_size: int, n_actions: int, hidden: int = 64) -> None:
        super().__init__()
        self.hidden = hidden
        self.fc1 = nn.Linear(input_size, hidden)
        self.rnn = nn.GRU(hidden, hidden, batch_first=True)
        self.fc2 = nn.Linear(hidden, n_actions)

    def initial_hidden(self, batch: int, device: torch.device | str | None = None) -> torch.Tensor:
        return torch.zeros(batch, self.hidden, device=device if device is not None else self.fc1.weight.device)

    def step(self, inputs: torch.Tensor, hidden: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """One step: inputs [M, D], hidden [M, H] -> (q [M, A], hidden [M, H]); M = E*N."""
        x = torch.relu(self.fc1(inputs)).unsqueeze(1)  # [M, 1, H]
        out, h = self.rnn(x, hidden.unsqueeze(0))  # [M, 1, H], [1, M, H]
        return self.fc2(out.squeeze(1)), h.squeeze(0)

    def forward(self, inputs: torch.Tensor) -> torch.Tensor:
        """Whole episodes from a zero hidden state: inputs [B, T, N, D] -> q [B, T, N, A]."""
        b, t, n, d = inputs.shape
        x = torch.relu(self.fc1(inputs.permute(0, 2, 1, 3).reshape(b * n, t, d)))  # [B*N, T, H]
        out, _ = self.rnn(x)  # [B*N, T, H]
        q = self.fc2(out)  # [B*N, T, A]
        return q.reshape(b, n, t, -1).permute(0, 2, 1, 3)
