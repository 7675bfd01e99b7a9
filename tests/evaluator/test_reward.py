"""The tiered reward: fixed weights, monotone in the tier reached, equal for equal verdicts."""

from __future__ import annotations

import pytest

from tfcaf.evaluator.reward import TIERS, WEIGHTS, NoReward, Reward, reward_or_none, tiered_reward
from tfcaf.verdict import Verdict, infrastructure, rejected

ACCEPTED = Verdict("accepted", "ok", "export", ("passed every gate",), metrics={"mono_min_grad": 0.5})

# one verdict per furthest tier reached, in pipeline order
LADDER = [
    rejected("static", "ast", "while loops are not allowed"),               # nothing passed
    rejected("runtime", "worker", "the function raised TypeError"),          # gates passed
    rejected("property", "properties", "property 'igm_monotone' failed"),    # contract passed
    rejected("export", "export", "the compiled graph differs"),              # properties passed, export failed
    ACCEPTED,                                                                # gates 0-2 passed
]


def test_weights_fixed_and_sum_to_one() -> None:
    assert set(WEIGHTS) == set(TIERS)
    assert sum(WEIGHTS.values()) == pytest.approx(1.0)


def test_monotone_in_tier_reached() -> None:
    totals = [tiered_reward(v).total for v in LADDER]
    assert totals == sorted(totals) and len(set(totals)) == len(totals), totals
    assert totals[0] == 0.0
    tiers = [tiered_reward(v).tier for v in LADDER]
    assert tiers == [-1, 0, 1, 1, 2]


def test_later_tier_beats_any_partial_earlier() -> None:
    # an accepted candidate with the worst graded scores still beats a rejected one with every partial credit
    worst_accepted = tiered_reward(ACCEPTED, measures={"micro": 0.0, "fitness": 0.0})
    best_rejected = max(tiered_reward(v).total for v in LADDER[:-1])
    assert worst_accepted.total > best_rejected


def test_graded_tiers_add_and_are_recorded() -> None:
    base = tiered_reward(ACCEPTED)
    micro = tiered_reward(ACCEPTED, measures={"micro": 1.0})
    full = tiered_reward(ACCEPTED, measures={"micro": 1.0, "fitness": 1.0, "multiseed": 1.0})
    assert base.total == pytest.approx(0.5) and base.measured == ()
    assert micro.total == pytest.approx(0.7) and micro.tier == 3 and micro.measured == ("micro",)
    assert full.total == pytest.approx(1.0) and full.tier == 5
    assert set(full.vector) == set(TIERS)


def test_equal_for_equal_verdicts_and_json_roundtrip() -> None:
    a = tiered_reward(ACCEPTED, measures={"micro": 0.3})
    b = tiered_reward(Verdict.from_json(ACCEPTED.to_json()), measures={"micro": 0.3})
    c = tiered_reward(ACCEPTED.to_json(), measures={"micro": 0.3})
    assert a == b == c
    assert isinstance(a, Reward)


def test_no_renormalisation_when_parts_are_missing() -> None:
    # a malformed judge answer or a missing fitness never rescales the rest
    assert tiered_reward(ACCEPTED).total == tiered_reward(ACCEPTED, measures={"judge": 0.9}).total


def test_values_clamped_and_nonfinite_ignored() -> None:
    r = tiered_reward(ACCEPTED, measures={"micro": 7.0, "fitness": float("nan")})
    assert r.vector["micro"] == 1.0 and "fitness" not in r.measured
    assert 0.0 <= r.total <= 1.0


def test_graded_tiers_only_for_accepted() -> None:
    r = tiered_reward(LADDER[2], measures={"micro": 1.0, "fitness": 1.0})
    assert r.total == pytest.approx(WEIGHTS["gates"] + WEIGHTS["contract"])


def test_infrastructure_has_no_reward() -> None:
    with pytest.raises(NoReward):
        tiered_reward(infrastructure("worker", "could not start"))
    assert reward_or_none(infrastructure("worker", "x")) is None


def test_escape_scores_zero_even_at_run_time() -> None:
    assert tiered_reward(rejected("escape", "restricted", "torch.os")).total == 0.0
    assert tiered_reward(rejected("escape", "worker", "tried to write a file")).total == 0.0


def test_production_limits_count_as_property_failures() -> None:
    slow = rejected("timeout", "properties", "production_time")
    hang = rejected("timeout", "worker", "killed")
    assert tiered_reward(slow).tier == 1 and tiered_reward(hang).tier == 0
