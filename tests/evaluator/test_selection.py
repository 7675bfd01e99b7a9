"""Selection: gates first, then properties, critic and fitness; deterministic ties."""

from __future__ import annotations

from tfcaf.evaluator.selection import SelectionWeights, combined_score, property_score, select


def test_rejected_never_selected_even_with_top_scores():
    items = [{"cid": "a", "accepted": False, "score": {"total": 1.0}}, {"cid": "b", "accepted": True, "score": {"total": 0.1}}]
    assert select(items) == "b"
    assert select([items[0]]) is None


def test_ties_go_to_the_earlier_candidate():
    items = [{"cid": "x", "accepted": True, "score": {"total": 0.5}}, {"cid": "y", "accepted": True, "score": {"total": 0.5}}]
    assert select(items) == "x"


def test_property_score_rewards_state_use_and_dead_agents_without_credit():
    good = property_score({"state_dependence": 0.9, "dead_agent_credit": 0.0})
    bad = property_score({"state_dependence": 0.0, "dead_agent_credit": 1.0})
    assert good > bad and property_score({}) == 0.5


def test_missing_components_renormalise():
    only = combined_score({"state_dependence": 1.0, "dead_agent_credit": 0.0}, None, None)
    assert only["total"] == 1.0 and "critic" not in only
    both = combined_score({"state_dependence": 1.0, "dead_agent_credit": 0.0}, 0.0, None, SelectionWeights(0.5, 0.5, 0.0))
    assert both["total"] == 0.5
    fit = combined_score({}, None, 2.0)
    assert fit["fitness"] == 1.0


def test_dead_agent_credit_ignored_without_an_alive_flag():
    assert property_score({"state_dependence": 0.0, "dead_agent_credit": 1.0}, has_alive=False) == 0.0
    assert property_score({"dead_agent_credit": 1.0}, has_alive=False) == 0.5


def test_a_missing_critique_is_not_compared_against_critic_scores():
    items = [{"cid": "a", "accepted": True, "score": {"properties": 0.8, "critic": 0.0, "total": 0.4}},
             {"cid": "b", "accepted": True, "score": {"properties": 0.8, "total": 0.8}},
             {"cid": "c", "accepted": True, "score": {"properties": 0.9, "critic": 1.0, "total": 0.95}}]
    assert select(items) == "c"  # compared on properties only: c has the best
    assert select(items[:2]) == "a"  # equal properties: the earlier one
