"""Selection: the best accepted candidate by its tiered reward; the judge only breaks ties.

Only accepted candidates are ranked (the gates decide acceptance; nothing here can overrule them).
Candidates are compared on `reward.total` (evaluator/reward.py): one fixed formula, so totals compare
across candidates and runs, and a malformed judge answer changes nothing.

How the judge's score is used: measured on real runs of the embedded model (SmolLM2-135M), the
judge's mean score had no usable rank agreement with the measured tiers (see README, "Dataset":
Spearman's rho between judge mean and tiered reward over accepted candidates, and it answered malformed
or all-ones most of the time). So it gets no weight in the reward; it breaks exact ties of the reward
only when `judge_tiebreak` is on (default), and `rank_agreement` lets anyone re-measure it. Remaining
ties go to the earlier candidate, so selection is deterministic.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Sequence

TIE = 1e-9


@dataclass(frozen=True)
class SelectionPolicy:
    """How the selected candidate is chosen among accepted ones."""

    judge_tiebreak: bool = True
    """Break exact ties of the tiered reward by the judge's mean score (candidates without one rank last among the tied)."""


def _total(item: dict[str, Any]) -> float:
    reward = item.get("reward")
    if isinstance(reward, dict):
        reward = reward.get("total")
    if reward is None:  # old runs: the score event's total
        reward = (item.get("score") or {}).get("total")
    try:
        value = float(reward)
    except (TypeError, ValueError):
        return -math.inf
    return value if math.isfinite(value) else -math.inf


def select(candidates: Sequence[dict[str, Any]], policy: SelectionPolicy = SelectionPolicy()) -> str | None:
    """The id of the best accepted candidate, or None when none was accepted.

    Each item has 'cid', 'accepted', 'reward' (a Reward JSON or its total) and optionally 'judge'
    (the judge's mean in [0, 1]), in generation order.

    >>> select([{"cid": "a", "accepted": True, "reward": 0.5}, {"cid": "b", "accepted": True, "reward": 0.7}])
    'b'
    """
    best, key = None, None
    for item in candidates:
        if not item.get("accepted"):
            continue
        judge = item.get("judge")
        judge = float(judge) if isinstance(judge, (int, float)) and not isinstance(judge, bool) and math.isfinite(judge) else -1.0
        mine = (_total(item), judge if policy.judge_tiebreak else 0.0)
        if key is None or mine[0] > key[0] + TIE or (abs(mine[0] - key[0]) <= TIE and mine[1] > key[1]):
            best, key = item["cid"], mine
    return best


def _ranks(xs: Sequence[float]) -> list[float]:
    order = sorted(range(len(xs)), key=lambda i: xs[i])
    ranks = [0.0] * len(xs)
    i = 0
    while i < len(order):
        j = i
        while j + 1 < len(order) and xs[order[j + 1]] == xs[order[i]]:
            j += 1
        for k in range(i, j + 1):
            ranks[order[k]] = (i + j) / 2.0
        i = j + 1
    return ranks


def rank_agreement(xs: Sequence[float], ys: Sequence[float]) -> float | None:
    """Spearman's rho (ties averaged) between two equally long sequences; None with < 3 pairs or a constant side.

    >>> rank_agreement([1, 2, 3, 4], [10, 20, 30, 40])
    1.0
    """
    if len(xs) != len(ys) or len(xs) < 3:
        return None
    rx, ry = _ranks(list(xs)), _ranks(list(ys))
    mx, my = sum(rx) / len(rx), sum(ry) / len(ry)
    vx = sum((a - mx) ** 2 for a in rx)
    vy = sum((b - my) ** 2 for b in ry)
    if vx == 0 or vy == 0:
        return None
    return round(sum((a - mx) * (b - my) for a, b in zip(rx, ry)) / math.sqrt(vx * vy), 6)
