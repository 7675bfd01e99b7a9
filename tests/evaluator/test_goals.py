"""Each goal checked on hand-written functions (monotone vs not, masking vs not, ...), measured for real."""

from __future__ import annotations

import pytest

from tfcaf.evaluator import goals
from tfcaf.evaluator.microtasks import run_checks
from tfcaf.evaluator.properties import PropertyOptions, run_properties
from tfcaf.tasks.registry import get_card
from tfcaf.verdict import Rejection, Verdict, rejected

OPTS = PropertyOptions(examples=4, production_batch=256)


def measured(fn, card) -> tuple[dict, dict]:
    """(verdict JSON, micro measures) of a hand-written function, vetted in-process (trusted test code)."""
    try:
        metrics = run_properties(fn, card, OPTS)
    except Rejection as rej:
        return rej.verdict().to_json(), {}
    verdict = Verdict("accepted", "ok", "export", ("passed",), metrics=metrics).to_json()
    return verdict, run_checks(fn, card)


def vdn(q, s):
    return q.sum(dim=1, keepdim=True)


def negative_first(q, s):
    return (q * q.new_tensor([-1.0] + [1.0] * (q.shape[1] - 1))).sum(dim=1, keepdim=True)


def smax_masking(card):
    cols = list(card.alive.columns)

    def fn(q, s):
        alive = (s[:, cols] > card.alive.threshold).to(q.dtype)  # [B, N]
        return (q * alive).sum(dim=1, keepdim=True) + 0.01 * q.sum(dim=1, keepdim=True) * 0.0
    return fn


def smax_health_weighted(card):
    cols = list(card.alive.columns)

    def fn(q, s):
        w = s[:, cols].clamp(0.0, 1.0)  # [B, N] health: zero when dead
        return (q * w).sum(dim=1, keepdim=True)
    return fn


@pytest.fixture(scope="module")
def smax():
    return get_card("smac_3m")


def test_monotone_vs_not_on_a_task_without_igm() -> None:
    card = get_card("matrix_climbing")  # IGM not required: the non-monotone function is accepted
    v_mono, m_mono = measured(vdn, card)
    v_neg, m_neg = measured(negative_first, card)
    assert v_neg["verdict"] == "accepted"
    assert goals.check("igm_monotone", v_mono, card, m_mono)
    assert not goals.check("igm_monotone", v_neg, card, m_neg)
    assert goals.check("not_vdn", v_neg, card, m_neg) and not goals.check("not_vdn", v_mono, card, m_mono)


def test_non_monotone_rejected_where_igm_required(smax) -> None:
    verdict, _ = measured(negative_first, smax)
    assert verdict["status"] == "property"
    got = goals.achieved(verdict, smax)
    assert got == ["all_gates", "contract"]
    assert not goals.check("igm_monotone", verdict, smax)


def test_masking_vs_not(smax) -> None:
    v_mask, m_mask = measured(smax_masking(smax), smax)
    v_vdn, m_vdn = measured(vdn, smax)
    assert v_mask["verdict"] == v_vdn["verdict"] == "accepted"
    assert goals.check("masks_dead_agents", v_mask, smax, m_mask)
    assert not goals.check("masks_dead_agents", v_vdn, smax, m_vdn)
    assert not goals.check("state_dependent", v_vdn, smax, m_vdn)
    assert m_mask["micro"]["dead_get_no_credit"] == pytest.approx(1.0)
    assert m_vdn["micro"]["dead_get_no_credit"] == pytest.approx(0.0)


def test_uses_feature_from_the_graph_columns(smax) -> None:
    v, m = measured(smax_health_weighted(smax), smax)
    names = [f.name for f in smax.features]
    health = next(n for n in names if "health" in n)
    assert goals.check(f"uses_feature:{health}", v, smax, m)
    assert goals.check("state_dependent", v, smax, m)
    v_vdn, m_vdn = measured(vdn, smax)
    assert not any(goals.check(f"uses_feature:{n}", v_vdn, smax, m_vdn) for n in names)


def test_uses_feature_from_a_spec(smax) -> None:
    name = smax.features[0].name
    accepted = Verdict("accepted", "ok", "export", ("passed",)).to_json()
    assert goals.check(f"uses_feature:{name}", accepted, smax, {"spec": {"weights": {name: 1.5}, "vdn_blend": 0.2}})
    assert not goals.check(f"uses_feature:{name}", accepted, smax, {"spec": {"weights": {name: 0.0}, "vdn_blend": 0.2}})
    assert not goals.check(f"uses_feature:{name}", accepted, smax, {"spec": {"weights": {name: 2.0}, "vdn_blend": 1.0}})


def test_fitness_threshold_and_parse_errors() -> None:
    card = get_card("matrix_climbing")
    v = Verdict("accepted", "ok", "export", ("passed",)).to_json()
    assert goals.check("fitness_ge:0.5", v, card, {"fitness": 0.6})
    assert not goals.check("fitness_ge:0.5", v, card, {"fitness": 0.4})
    assert not goals.check("fitness_ge:0.5", v, card)  # not measured -> not achieved
    assert "fitness_ge:0.5" in goals.achieved(v, card, {"fitness": 0.6})
    for bad in ("nope", "fitness_ge", "fitness_ge:x", "fitness_ge:nan", "contract:1", "uses_feature:"):
        with pytest.raises(ValueError):
            goals.parse_goal(bad)


def test_rejected_candidates_achieve_only_what_they_passed() -> None:
    card = get_card("matrix_climbing")
    assert goals.achieved(rejected("static", "ast", "no"), card) == []
    assert goals.achieved(rejected("runtime", "worker", "raised"), card) == ["all_gates"]
    # masks_dead_agents does not exist without an alive flag
    assert "masks_dead_agents" not in goals.candidate_goals(card)


def test_matrix_micro_task_knows_the_optimum() -> None:
    card = get_card("matrix_climbing")
    assert run_checks(vdn, card)["micro"]["matrix_optimum"] < 1.0  # VDN miscoordinates on climbing

    def pessimistic(q, s):  # min-based (still monotone) mixing represents the climbing optimum
        return q.min(dim=1, keepdim=True).values
    assert run_checks(pessimistic, card)["micro"]["matrix_optimum"] == 1.0
