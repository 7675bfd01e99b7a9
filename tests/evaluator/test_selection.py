"""Selection: gates first, then the tiered reward; the judge only breaks exact ties; deterministic."""

from __future__ import annotations

from tfcaf.evaluator.selection import SelectionPolicy, rank_agreement, select


def test_rejected_never_selected_even_with_top_rewards():
    items = [{"cid": "a", "accepted": False, "reward": 1.0}, {"cid": "b", "accepted": True, "reward": 0.1}]
    assert select(items) == "b"
    assert select([items[0]]) is None


def test_best_reward_wins_and_reward_json_is_read():
    items = [{"cid": "a", "accepted": True, "reward": {"total": 0.55}}, {"cid": "b", "accepted": True, "reward": {"total": 0.6}}]
    assert select(items) == "b"


def test_ties_go_to_the_earlier_candidate():
    items = [{"cid": "x", "accepted": True, "reward": 0.5}, {"cid": "y", "accepted": True, "reward": 0.5}]
    assert select(items) == "x"


def test_judge_breaks_only_exact_ties():
    items = [{"cid": "a", "accepted": True, "reward": 0.6, "judge": 0.0},
             {"cid": "b", "accepted": True, "reward": 0.6, "judge": 0.9},
             {"cid": "c", "accepted": True, "reward": 0.59, "judge": 1.0}]
    assert select(items) == "b"
    assert select(items, SelectionPolicy(judge_tiebreak=False)) == "a"
    # a missing (malformed) judge answer ranks last among the tied, never changes the reward order
    assert select([{"cid": "a", "accepted": True, "reward": 0.6}, {"cid": "b", "accepted": True, "reward": 0.6, "judge": 0.1}]) == "b"


def test_old_runs_score_total_still_ranks():
    assert select([{"cid": "a", "accepted": True, "score": {"total": 0.2}}, {"cid": "b", "accepted": True, "score": {"total": 0.3}}]) == "b"


def test_rank_agreement():
    assert rank_agreement([1, 2, 3], [3, 2, 1]) == -1.0
    assert rank_agreement([1, 1, 1], [1, 2, 3]) is None
    assert rank_agreement([1, 2], [1, 2]) is None
    assert abs(rank_agreement([1, 2, 3, 4], [1, 3, 2, 4]) - 0.8) < 1e-9
