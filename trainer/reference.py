"""Hand-written reference credit functions, one per task family. Written by people, not by an LLM.

They are baselines and test fixtures for the `handwritten` mixer: training-free (no parameters), of
the TFCAF signature `(agents_q [B, N], global_state [B, S]) -> q_tot [B, 1]`, and monotone in every
Q_i (so they satisfy IGM). They read the state only through the task card (never through a layout
they assume), so they stay right when a card changes.
"""

from __future__ import annotations

import torch
from torch import nn

from tfcaf.tasks.card import TaskCard


class HandwrittenSum(nn.Module):
    """q_tot = sum_i Q_i (VDN as a credit function): the reference where the state says nothing per agent."""

    def forward(self, agents_q: torch.Tensor, global_state: torch.Tensor) -> torch.Tensor:
        return agents_q.sum(dim=-1, keepdim=True)  # [B, 1]


class HandwrittenOptimistic(nn.Module):
    """q_tot = N * (mean_i Q_i + max_i Q_i) / 2: a sum that leans towards the most optimistic agent.

    For one-step coordination games (no state): monotone in every Q_i, and less pulled down by an
    agent whose Q values are depressed by its partner's exploration than a plain sum.
    """

    def forward(self, agents_q: torch.Tensor, global_state: torch.Tensor) -> torch.Tensor:
        n = agents_q.shape[-1]
        return n * 0.5 * (agents_q.mean(-1, keepdim=True) + agents_q.amax(-1, keepdim=True))  # [B, 1]


class HandwrittenAliveWeighted(nn.Module):
    """q_tot = sum_i w_i Q_i with w_i = 0.5 + 0.5 * clamp(alive_value_i, 0, 1) (e.g. normalised health).

    Agents that are alive and healthy carry more of the team value; dead agents (value 0) keep weight
    0.5 so their Q_i still gets a gradient. The columns come from the card's AliveFlag.
    """

    def __init__(self, columns: tuple[int, ...]) -> None:
        super().__init__()
        self.register_buffer("columns", torch.tensor(columns, dtype=torch.int64), persistent=False)

    def forward(self, agents_q: torch.Tensor, global_state: torch.Tensor) -> torch.Tensor:
        alive = global_state.index_select(-1, self.columns).clamp(0.0, 1.0)  # [B, N]
        weights = 0.5 + 0.5 * alive  # [B, N]
        return (weights * agents_q).sum(-1, keepdim=True)  # [B, 1]


def has_handwritten(card: TaskCard) -> bool:
    """Whether the task has a hand-written reference of its own (not just VDN under another name)."""
    return card.family == "matrix" or card.alive is not None


def handwritten_for(card: TaskCard) -> nn.Module:
    """The hand-written reference credit function for a task's family.

    Where the state says nothing per agent (no alive flags, not a matrix game) the only reference would
    be the plain sum, i.e. VDN: that is refused rather than silently named `handwritten`."""
    from tfcaf.errors import UsageError

    if card.family == "matrix":
        return HandwrittenOptimistic()
    if card.alive is not None:
        return HandwrittenAliveWeighted(card.alive.columns)
    raise UsageError(f"task '{card.name}' has no hand-written reference credit function (family '{card.family}' has no "
                     "per-agent alive flags); it would only be VDN. Use --mixer vdn.")
