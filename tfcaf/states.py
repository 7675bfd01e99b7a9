"""The one sampler of global states from a task card's declared ranges (shared by every stage).

Infinite bounds are clamped to +-`bound`. Uniform draws are mostly physically impossible states (dead
units with positions, full-health units without type bits): prefer recorded rollout states
(`tfcaf.tasks.samples`) where they exist, and use these for shape-level checks and as a fallback.

    >>> import torch
    >>> from tfcaf.tasks.registry import get_card
    >>> uniform_states(get_card("matrix_climbing"), 4, torch.Generator().manual_seed(0)).shape
    torch.Size([4, 1])
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import torch

DEFAULT_BOUND = 1e3
"""|x| limit applied to the card's infinite (or huge) bounds."""


def state_bounds(card: Any, bound: float = DEFAULT_BOUND) -> tuple["torch.Tensor", "torch.Tensor"]:
    """(low [S], high [S]) float32 from the card's slices, clamped to +-bound."""
    import torch

    low = torch.tensor([max(-bound, min(bound, v)) for v in card.state_low], dtype=torch.float32)  # [S]
    high = torch.tensor([max(-bound, min(bound, v)) for v in card.state_high], dtype=torch.float32)  # [S]
    return low, high


def uniform_states(card: Any, b: int, generator: "torch.Generator", bound: float = DEFAULT_BOUND) -> "torch.Tensor":
    """[b, S] float32 states drawn uniformly inside the card's (clamped) ranges."""
    import torch

    low, high = state_bounds(card, bound)
    return low + torch.rand(b, card.state_dim, generator=generator) * (high - low)  # [B, S]
