"""Named per-agent features of a task card: evaluate them, or render them as candidate source.

Each card carries `features` (see `tfcaf.tasks.card.Feature`): a name, its meaning, a value range and
a torch expression over `global_state` [B, S] giving a [B, N] tensor. A structured (spec-mode)
generator references them by name; `feature_source` renders the assignments that go into a candidate,
which is then vetted like any other candidate (the expressions are our text, but the rendered module
is not trusted for that).

Example:
    >>> import torch
    >>> from tfcaf.tasks.registry import get_card
    >>> card = get_card("smac_3m")
    >>> evaluate(card, torch.zeros(2, card.state_dim), ["alive"])["alive"].shape
    torch.Size([2, 3])
"""

from __future__ import annotations

import ast
from typing import TYPE_CHECKING, Iterable

from tfcaf.errors import UsageError
from tfcaf.tasks.card import Feature, TaskCard

if TYPE_CHECKING:
    import torch


def _torch_only_import(name: str, globals: object = None, locals: object = None, fromlist: object = (), level: int = 0) -> object:
    # torch's C++ argument parser imports `torch` through the calling frame's builtins when a Python
    # scalar meets a tensor (e.g. torch.where(cond, x, 1.5)); nothing else may be imported.
    if name != "torch":
        raise ImportError(f"feature expressions may not import {name}")
    import torch

    return torch


def _select(card: TaskCard, names: Iterable[str] | None) -> list[Feature]:
    if names is None:
        return list(card.features)
    out = []
    for name in names:
        try:
            out.append(card.feature(name))
        except KeyError:
            known = ", ".join(f.name for f in card.features) or "none"
            raise UsageError(f"task {card.name} has no feature '{name}'. Its features: {known}") from None
    return out


def evaluate(card: TaskCard, global_state: "torch.Tensor", names: Iterable[str] | None = None) -> dict[str, "torch.Tensor"]:
    """Evaluate features (all, or `names`) on global_state [B, S] -> {name: [B, N]}.

    Runs our own expressions with no builtins but a torch-only `__import__`; raises ValueError when a
    result is not [B, N].
    """
    import torch

    if global_state.dim() != 2 or global_state.shape[1] != card.state_dim:
        raise ValueError(f"global_state must be [B, {card.state_dim}], got {list(global_state.shape)}")
    env = {"__builtins__": {"__import__": _torch_only_import}, "torch": torch}
    out = {}
    for f in _select(card, names):
        value = eval(compile(f.expr, f"<feature {f.name}>", "eval"), env, {"global_state": global_state})  # noqa: S307
        if tuple(value.shape) != (global_state.shape[0], card.n_agents):
            raise ValueError(f"feature {f.name} of {card.name} gave shape {list(value.shape)}, expected [B, {card.n_agents}]")
        out[f.name] = value
    return out


def feature_source(card: TaskCard, names: Iterable[str] | None = None, indent: str = "    ") -> str:
    """Python assignments `name = <expr>  # [B, N] meaning` for a candidate's body (all features or `names`)."""
    lines = []
    for f in _select(card, names):
        lines.append(f"{indent}{f.name} = {f.expr}  # [B, N] in [{f.low:g}, {f.high:g}]: {f.meaning}")
    return "\n".join(lines)


def check_expressions(card: TaskCard) -> list[str]:
    """Problems with a card's feature expressions that the sandbox would reject for sure (empty when fine):
    syntax errors, names other than global_state / torch, `.item()` / `.tolist()` / `.numpy()`."""
    problems = []
    for f in card.features:
        try:
            tree = ast.parse(f.expr, mode="eval")
        except SyntaxError as err:
            problems.append(f"{f.name}: {err}")
            continue
        for node in ast.walk(tree):
            if isinstance(node, ast.Name) and node.id not in ("global_state", "torch"):
                problems.append(f"{f.name}: uses the name {node.id}")
            if isinstance(node, ast.Attribute) and node.attr in ("item", "tolist", "numpy") or \
                    isinstance(node, ast.Attribute) and node.attr.startswith("_"):
                problems.append(f"{f.name}: uses .{node.attr}")
            if isinstance(node, (ast.Lambda, ast.IfExp, ast.comprehension)):
                problems.append(f"{f.name}: uses {type(node).__name__}")
    return problems
