"""The tiered reward: one number in [0, 1] per candidate, the same formula for every candidate and run.

Tiers, in the order the pipeline reaches them (`Reward.tier` is the furthest tier *passed*; -1 when
not even the gates were passed):

====  ============  ===================================================================  ======
tier  name          passed when                                                          weight
====  ============  ===================================================================  ======
0     gates         the text gate, the AST allow-list and the restricted load passed     0.10
1     contract      it ran: shape [B, 1], dtype, finite on the first batches, gradients   0.15
2     properties    every property gate (IGM where required, batch independence,          0.25
                    determinism, scale, production time/memory) and the graph export
3     micro         micro-tasks with known answers (graded in [0, 1], see microtasks.py)  0.20
4     fitness       short-training fitness (`--fitness-steps`, graded in [0, 1])          0.20
5     multiseed     multi-seed full runs (graded in [0, 1]) when they exist               0.10
====  ============  ===================================================================  ======

`total = sum_t WEIGHTS[t] * vector[t]`. Gate tiers 0-2 are pass/fail (1 or 0) and lexicographic: a
tier counts only when every earlier one passed, so a candidate that reached a later tier always
scores strictly higher than one stopped earlier (the gates add 0.50 before any graded tier; an export
failure after a passed property suite earns half the properties tier). Graded tiers 3-5 count only for
accepted candidates and are 0 when not measured: `Reward.measured` says which were. No
renormalisation: a missing judge answer, a missing fitness or a malformed anything never rescales the
other parts, so totals compare across candidates and runs (compare runs measured the same way).

The judge LLM is not a tier: its score is not in the reward (see selection.py for how it is used).
Infrastructure failures are never the candidate's: `tiered_reward` raises `NoReward` for them.

    >>> from tfcaf.verdict import rejected
    >>> r = tiered_reward(rejected("property", "properties", "property 'igm_monotone' failed"))
    >>> r.tier, r.total
    (1, 0.25)
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Mapping

TIERS: tuple[str, ...] = ("gates", "contract", "properties", "micro", "fitness", "multiseed")
"""Tier index -> name (the keys of `Reward.vector`)."""

WEIGHTS: dict[str, float] = {"gates": 0.10, "contract": 0.15, "properties": 0.25, "micro": 0.20,
                             "fitness": 0.20, "multiseed": 0.10}
"""Fixed weights per tier; they sum to 1."""

EXPORT_PARTIAL = 0.5
"""Share of the properties tier earned when the property suite passed but the graph export failed."""

# status -> furthest tier passed, for rejected candidates (the stage refines 'timeout'/'memory'/'runtime')
_FAILED_AT: dict[str, int] = {"text": -1, "static": -1, "restricted": -1, "escape": -1,
                              "runtime": 0, "contract": 0, "timeout": 0, "memory": 0,
                              "property": 1, "export": 1}


class NoReward(ValueError):
    """The verdict is an infrastructure failure (not the candidate's fault): it has no reward."""


@dataclass(frozen=True)
class Reward:
    """A candidate's tiered reward."""

    total: float
    """sum_t WEIGHTS[t] * vector[t], in [0, 1]."""
    vector: dict[str, float]
    """Tier name -> its score in [0, 1] (every tier present; 0 when not reached or not measured)."""
    tier: int
    """The furthest tier passed: -1 (nothing) .. 5; graded tiers count as passed when measured."""
    measured: tuple[str, ...] = field(default_factory=tuple)
    """The graded tiers (micro, fitness, multiseed) that were measured for this candidate."""

    def to_json(self) -> dict[str, Any]:
        return {"total": self.total, "vector": dict(self.vector), "tier": self.tier, "measured": list(self.measured)}


def _field(verdict: Any, name: str, default: Any = None) -> Any:
    if isinstance(verdict, Mapping):
        return verdict.get(name, default)
    return getattr(verdict, name, default)


def _unit(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(float(value)):
        return None
    return min(1.0, max(0.0, float(value)))


def gate_tier(verdict: Any) -> int:
    """The furthest gate tier (-1, 0, 1 or 2) a verdict passed; raises NoReward for infrastructure."""
    status, stage = _field(verdict, "status"), _field(verdict, "stage")
    if status == "infrastructure" or _field(verdict, "verdict") == "error":
        raise NoReward("an infrastructure failure has no reward (not the candidate's fault)")
    if status == "ok":
        return 2
    if status in ("timeout", "memory") and stage == "properties":
        return 1  # the production-shape gates run after the contract passed
    if status not in _FAILED_AT:
        raise ValueError(f"unknown verdict status {status!r}")
    return _FAILED_AT[status]


def tiered_reward(verdict: Any, card: Any = None, *, measures: Mapping[str, Any] | None = None,
                  weights: Mapping[str, float] = WEIGHTS) -> Reward:
    """The reward of one candidate from its verdict (a `Verdict` or its JSON) and optional measures.

    `measures` (or the verdict's metrics, as a fallback) may hold `micro_score` (or `micro`: the
    micro-task score from `microtasks.run_checks`), `fitness` and `multiseed`, each a number in [0, 1]
    (anything else is "not measured"). `card` is accepted for
    symmetry with `goals.check` (the tiers do not depend on it). Equal verdicts and measures give
    equal rewards. Raises NoReward for an infrastructure failure.
    """
    del card
    passed = gate_tier(verdict)
    vector = {name: 0.0 for name in TIERS}
    for t in range(passed + 1):
        vector[TIERS[t]] = 1.0
    if _field(verdict, "status") == "export":
        vector["properties"] = EXPORT_PARTIAL
    tier, measured = passed, []
    if passed == 2:
        metrics = dict(_field(verdict, "metrics") or {})
        given = dict(measures or {})
        for name in ("micro", "fitness", "multiseed"):
            value = None
            for source in (given, metrics):  # measures first; `<name>_score` before `<name>`
                for key in (f"{name}_score", name):
                    if value is None and key in source:
                        value = _unit(source[key])
            if value is not None:
                vector[name] = value
                measured.append(name)
                tier = TIERS.index(name)
    total = sum(weights[name] * vector[name] for name in TIERS)
    return Reward(total=round(min(1.0, max(0.0, total)), 6), vector={k: round(v, 6) for k, v in vector.items()},
                  tier=tier, measured=tuple(measured))


def reward_or_none(verdict: Any, card: Any = None, **kwargs: Any) -> Reward | None:
    """`tiered_reward`, or None for an infrastructure failure."""
    try:
        return tiered_reward(verdict, card, **kwargs)
    except NoReward:
        return None


def goal_reward(total: float, goal: "list[str] | tuple[str, ...]", achieved: "list[str] | tuple[str, ...]") -> float:
    """The goal-conditioned reward of a row: `total * (1 + hit / len(goal)) / 2`, where `hit` counts the
    requested goals achieved; `total` itself when no goal was requested or every one was met. In [0, 1],
    never above the tiered reward, monotone in both the tier and the goals met.

    >>> goal_reward(0.6, ["finite", "not_vdn"], ["finite"])
    0.45
    """
    if not goal:
        return round(total, 6)
    hit = sum(1 for g in goal if g in set(achieved))
    return round(total * (1.0 + hit / len(goal)) / 2.0, 6)
