"""Selection: one number per accepted candidate from the property results, the evaluator's scores and an
optional short-training fitness; the best accepted candidate wins.

Only accepted candidates are ranked (the property gates decide acceptance; nothing here can overrule
them). Each component is mapped to [0, 1]; missing components drop out and the remaining weights are
renormalised, so a run without a critic ranks by the properties alone. Ties go to the earlier candidate,
so selection is deterministic.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Sequence

SOFT_QUALITIES: dict[str, tuple[str, float]] = {
    # metric name -> (direction, scale): 'high' maps v to v/scale, 'low' to 1 - v/scale, clipped to [0, 1]
    "state_dependence": ("high", 1.0),
    "dead_agent_credit": ("low", 1.0),
}
"""Soft qualities the vetter measures (reported, not gated) that selection rewards when present."""


@dataclass(frozen=True)
class SelectionWeights:
    """How much each component counts (renormalised over the components a candidate has)."""

    properties: float = 0.4
    critic: float = 0.4
    fitness: float = 0.2


def property_score(metrics: dict[str, Any], has_alive: bool = True) -> float:
    """Soft qualities in [0, 1]; 0.5 when none was measured (every accepted candidate passed the gates).
    Without an alive flag on the task (`has_alive=False`) dead-agent credit means nothing and is ignored."""
    parts = []
    for name, (direction, scale) in SOFT_QUALITIES.items():
        if not has_alive and name.startswith("dead_"):
            continue
        value = (metrics or {}).get(name)
        if isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value):
            v = min(1.0, max(0.0, float(value) / scale))
            parts.append(v if direction == "high" else 1.0 - v)
    return sum(parts) / len(parts) if parts else 0.5


def combined_score(metrics: dict[str, Any], critic_mean: float | None, fitness: float | None,
                   weights: SelectionWeights = SelectionWeights(), has_alive: bool = True) -> dict[str, float]:
    """{'properties', 'critic'?, 'fitness'?, 'total'}; critic_mean and fitness already in [0, 1]."""
    parts = {"properties": property_score(metrics, has_alive)}
    if critic_mean is not None:
        parts["critic"] = min(1.0, max(0.0, critic_mean))
    if fitness is not None and math.isfinite(fitness):
        parts["fitness"] = min(1.0, max(0.0, fitness))
    w = {k: getattr(weights, k) for k in parts}
    norm = sum(w.values()) or 1.0
    parts["total"] = sum(parts[k] * w[k] for k in w) / norm
    return {k: round(v, 6) for k, v in parts.items()}


def select(candidates: Sequence[dict[str, Any]], weights: SelectionWeights = SelectionWeights()) -> str | None:
    """The id of the best accepted candidate: each item has 'cid', 'accepted' and 'score' (the parts from
    `combined_score`), in generation order; None when none was accepted.

    Candidates are compared on the components that EVERY accepted candidate has (a candidate whose
    critique was skipped or malformed is not ranked against another one's critic score), re-weighted.
    """
    accepted = [c for c in candidates if c.get("accepted")]
    if not accepted:
        return None
    parts = [p for p in ("properties", "critic", "fitness") if all(p in (c.get("score") or {}) for c in accepted)]
    best, best_total = None, -math.inf
    for item in accepted:
        score = item.get("score") or {}
        if parts:
            norm = sum(getattr(weights, p) for p in parts) or 1.0
            total = sum(float(score[p]) * getattr(weights, p) for p in parts) / norm
        else:
            total = float(score.get("total", 0.0))
        if total > best_total + 1e-12:
            best, best_total = item["cid"], total
    return best
