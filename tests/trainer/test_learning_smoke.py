"""Small learning runs with generous budgets (CleanRL-style CI smoke tests).

matrix_penalty (payoff [[-100, 0, 10], [0, 2, 0], [10, 0, -100]]): under uniform exploration the
miscoordination penalty drags the optimum's actions down, so monotone mixers (VDN, QMIX) are expected
to settle on the safe joint action (1, 1) worth 2, not the optimum 10 (relative overgeneralisation;
Rashid et al. 2020, WQMIX). What a test can demand: they reach at least 2 and never a -100 cell.
"""

from __future__ import annotations

import pytest

from tfcaf.tasks.registry import TASKS
from tfcaf.trainer.config import resolve_config
from tfcaf.trainer.run import Run


@pytest.mark.parametrize("mixer", ["vdn", "qmix", "handwritten"])
def test_matrix_penalty_reaches_the_safe_joint_action(tmp_path, mixer):
    cfg, _ = resolve_config("matrix", flags={"steps": 6000, "tensorboard": False, "seed": 1})
    summary = Run.start("matrix_penalty", mixer, cfg, store=tmp_path).train()
    assert summary["test_return_mean"] >= 2.0


def test_matrix_climbing_beats_random_play(tmp_path):
    # Random joint actions earn 4/9 on average; every greedy cell but the -30 ones is >= 0 (5, 6, 7, 11).
    cfg, _ = resolve_config("matrix", flags={"steps": 6000, "tensorboard": False, "seed": 2})
    summary = Run.start("matrix_climbing", "qmix", cfg, store=tmp_path).train()
    assert summary["test_return_mean"] >= 5.0


@pytest.mark.slow
@pytest.mark.skipif("lbf_8x8-2p-3f" not in TASKS, reason="LBF tasks not registered")
def test_lbf_small_map_learns_to_forage(tmp_path):
    pytest.importorskip("lbforaging")
    cfg, _ = resolve_config(TASKS["lbf_8x8-2p-3f"].card.family,
                            flags={"steps": 40_000, "tensorboard": False, "test_interval": 10_000, "test_episodes": 16,
                                   "epsilon_anneal_steps": 20_000})
    summary = Run.start("lbf_8x8-2p-3f", "vdn", cfg, store=tmp_path).train()
    assert summary["test_return_mean"] >= 0.2  # random play collects ~0.05 of the food in 50 steps
