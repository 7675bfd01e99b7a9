"""Episode and rollout storage built from a scheme of fields (EPyMARL's `scheme`, written as data).

A scheme is a tuple of `Field`s; each names its tensor, its shape in symbolic dimensions and its dtype.
`allocate(scheme, dims)` makes the zeroed tensors. The replay path (`buffer.EpisodeBatch`) and the
on-policy path (`onpolicy.Rollout`) are both allocated from schemes, and an algorithm adds its own
per-step fields (log-probs, values, hidden states) by extending one.

Dimensions: B episodes (or E envs), T transitions, T1 = T + 1 observation steps, N agents, O obs
features, S state features, A actions, H recurrent width; an int is a literal size.

>>> t = allocate((Field("reward", ("B", "T"), torch.float32, "team reward"),), {"B": 2, "T": 3})
>>> t["reward"].shape
torch.Size([2, 3])
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from tfcaf.errors import UsageError


@dataclass(frozen=True)
class Field:
    """One stored tensor: its name, symbolic shape, dtype and meaning."""

    name: str
    shape: tuple[str | int, ...]
    dtype: torch.dtype
    doc: str


Scheme = tuple[Field, ...]

EPISODE_SCHEME: Scheme = (
    Field("obs", ("B", "T1", "N", "O"), torch.float32, "observations, incl. the one after the last transition"),
    Field("state", ("B", "T1", "S"), torch.float32, "global states, incl. the final one (bootstraps truncation)"),
    Field("avail", ("B", "T1", "N", "A"), torch.bool, "available actions"),
    Field("actions", ("B", "T", "N"), torch.int64, "actions taken"),
    Field("reward", ("B", "T"), torch.float32, "team reward"),
    Field("terminated", ("B", "T"), torch.bool, "the task ended the episode here (no bootstrap)"),
    Field("mask", ("B", "T"), torch.bool, "a real transition (not padding)"),
    Field("episode_return", ("B",), torch.float32, "episode return"),
    Field("won", ("B",), torch.bool, "battle won (SMAX)"),
    Field("length", ("B",), torch.int64, "episode length"),
)
"""What the replay path stores per episode (value decomposition)."""

ROLLOUT_SCHEME: Scheme = (
    Field("obs", ("T1", "E", "N", "O"), torch.float32, "observations the agents acted on (T1: the next rollout's first)"),
    Field("state", ("T1", "E", "S"), torch.float32, "global states at the same steps"),
    Field("avail", ("T1", "E", "N", "A"), torch.bool, "available actions"),
    Field("last_actions", ("T1", "E", "N"), torch.int64, "previous actions (-1 at an episode start)"),
    Field("actions", ("T", "E", "N"), torch.int64, "actions taken"),
    Field("reward", ("T", "E"), torch.float32, "team reward"),
    Field("terminated", ("T", "E"), torch.bool, "the task ended the episode (value 0 after it)"),
    Field("done", ("T", "E"), torch.bool, "terminated or truncated: the next obs belongs to a new episode"),
    Field("final_value", ("T", "E", "N"), torch.float32, "critic value (raw) of final_state where truncated, else 0"),
)
"""What the on-policy path stores per rollout (time-major, E envs); policies add their `stored` fields."""


def allocate(scheme: Scheme, dims: dict[str, int], device: torch.device | str = "cpu") -> dict[str, torch.Tensor]:
    """Zeroed tensors for every field of `scheme`, with symbolic dimensions looked up in `dims`."""
    out = {}
    for f in scheme:
        try:
            shape = [d if isinstance(d, int) else dims[d] for d in f.shape]
        except KeyError as err:
            raise UsageError(f"storage field '{f.name}' needs dimension {err.args[0]}") from None
        out[f.name] = torch.zeros(*shape, dtype=f.dtype, device=device)
    return out


def extend(scheme: Scheme, *more: Field) -> Scheme:
    """The scheme with more fields (a field name may appear once)."""
    names = {f.name for f in scheme}
    for f in more:
        if f.name in names:
            raise ValueError(f"field '{f.name}' is already in the scheme")
        names.add(f.name)
    return scheme + tuple(more)
