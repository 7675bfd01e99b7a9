"""Actors and critics of the policy-gradient algorithms (HARL's StochasticPolicy and VNet, written anew).

Both are: optional LayerNorm on the input features -> two Linear+ReLU+LayerNorm layers -> optional GRU
(+ LayerNorm) -> a linear head. Weights are orthogonally initialised (gain sqrt(2) for hidden layers;
0.01 for the actor's output, 1 for the critic's), biases zero, as HARL does: without the feature norm and
the small output gain a policy can collapse to a point mass on large-scale features (SMAX's raw map
coordinates and cooldowns).

Recurrent sequences are [T, B, D] with `starts [T, B]` marking steps where a new episode begins (the
hidden state is zeroed there); feed-forward networks ignore the hidden state (H = 0 is allowed).
"""

from __future__ import annotations

import math

import torch
from torch import nn


def _init(layer: nn.Linear, gain: float) -> nn.Linear:
    nn.init.orthogonal_(layer.weight, gain=gain)
    nn.init.zeros_(layer.bias)
    return layer


class Trunk(nn.Module):
    """Feature norm, two hidden layers, optional GRU: x [..., D] -> features [..., H]."""

    def __init__(self, input_size: int, hidden: int, recurrent: bool, feature_norm: bool) -> None:
        super().__init__()
        gain = math.sqrt(2.0)
        self.hidden, self.recurrent = hidden, recurrent
        self.feature_norm = nn.LayerNorm(input_size) if feature_norm else nn.Identity()
        self.mlp = nn.Sequential(_init(nn.Linear(input_size, hidden), gain), nn.ReLU(), nn.LayerNorm(hidden),
                                 _init(nn.Linear(hidden, hidden), gain), nn.ReLU(), nn.LayerNorm(hidden))
        if recurrent:
            self.rnn = nn.GRU(hidden, hidden)
            for name, p in self.rnn.named_parameters():
                (nn.init.orthogonal_ if "weight" in name else nn.init.zeros_)(p)
            self.rnn_norm = nn.LayerNorm(hidden)

    @property
    def state_size(self) -> int:
        return self.hidden if self.recurrent else 0

    def step(self, x: torch.Tensor, h: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """One step: x [B, D], h [B, H] -> (features [B, H], h [B, H])."""
        z = self.mlp(self.feature_norm(x))  # [B, H]
        if not self.recurrent:
            return z, h
        out, h2 = self.rnn(z.unsqueeze(0), h.unsqueeze(0).contiguous())  # [1, B, H]
        return self.rnn_norm(out.squeeze(0)), h2.squeeze(0)

    def sequence(self, x: torch.Tensor, h0: torch.Tensor, starts: torch.Tensor) -> torch.Tensor:
        """x [T, B, D], h0 [B, H], starts [T, B] bool -> features [T, B, H] (hidden zeroed where a new episode starts)."""
        z = self.mlp(self.feature_norm(x))  # [T, B, H]
        if not self.recurrent:
            return z
        outs, h = [], h0
        keep = (~starts).to(z.dtype).unsqueeze(-1)  # [T, B, 1]
        for t in range(z.shape[0]):
            out, hn = self.rnn(z[t].unsqueeze(0), (h * keep[t]).unsqueeze(0).contiguous())
            outs.append(out.squeeze(0))
            h = hn.squeeze(0)
        return self.rnn_norm(torch.stack(outs))


class Actor(nn.Module):
    """pi_i(a | o_i) over discrete actions; unavailable actions get probability 0.

    >>> actor = Actor(input_size=4, n_actions=3, hidden=8)
    >>> actor.logits(torch.zeros(2, 4), torch.ones(2, 3, dtype=torch.bool)).shape
    torch.Size([2, 3])
    """

    def __init__(self, input_size: int, n_actions: int, hidden: int = 128, recurrent: bool = False,
                 feature_norm: bool = True) -> None:
        super().__init__()
        self.trunk = Trunk(input_size, hidden, recurrent, feature_norm)
        self.head = _init(nn.Linear(hidden, n_actions), 0.01)

    @staticmethod
    def masked(logits: torch.Tensor, avail: torch.Tensor) -> torch.Tensor:
        return logits.masked_fill(~avail, -1e10)

    def logits(self, x: torch.Tensor, avail: torch.Tensor) -> torch.Tensor:
        """Feed-forward logits (for MLP actors): x [..., D], avail [..., A] -> [..., A]."""
        return self.masked(self.head(self.trunk.mlp(self.trunk.feature_norm(x))), avail)

    def step(self, x: torch.Tensor, avail: torch.Tensor, h: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """x [B, D], avail [B, A], h [B, H] -> (masked logits [B, A], h [B, H])."""
        z, h = self.trunk.step(x, h)
        return self.masked(self.head(z), avail), h

    def sequence(self, x: torch.Tensor, avail: torch.Tensor, h0: torch.Tensor, starts: torch.Tensor) -> torch.Tensor:
        """x [T, B, D], avail [T, B, A], h0 [B, H], starts [T, B] -> masked logits [T, B, A]."""
        return self.masked(self.head(self.trunk.sequence(x, h0, starts)), avail)


class Critic(nn.Module):
    """V(input) -> [..., 1] in the value normaliser's space (HARL's VNet)."""

    def __init__(self, input_size: int, hidden: int = 128, recurrent: bool = False, feature_norm: bool = True) -> None:
        super().__init__()
        self.trunk = Trunk(input_size, hidden, recurrent, feature_norm)
        self.head = _init(nn.Linear(hidden, 1), 1.0)

    def step(self, x: torch.Tensor, h: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        z, h = self.trunk.step(x, h)
        return self.head(z), h

    def sequence(self, x: torch.Tensor, h0: torch.Tensor, starts: torch.Tensor) -> torch.Tensor:
        return self.head(self.trunk.sequence(x, h0, starts))
