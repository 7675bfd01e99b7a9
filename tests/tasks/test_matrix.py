import pytest
import torch

from tfcaf.errors import UsageError
from tfcaf.tasks.matrix import CLIMBING, PENALTY
from tfcaf.tasks.registry import get_card, get_task, make_env


@pytest.mark.parametrize("name,payoff", [("matrix_climbing", CLIMBING), ("matrix_penalty", PENALTY)])
def test_matrix_rewards_follow_the_payoff(name, payoff):
    env = make_env(name, n_envs=9)
    first = env.reset(seed=0)
    assert first.obs.shape == (9, 2, 1) and first.state.shape == (9, 1) and first.avail_actions.all()
    actions = torch.tensor([[i, j] for i in range(3) for j in range(3)])
    out = env.step(actions)
    assert out.reward.tolist() == [payoff[i][j] for i in range(3) for j in range(3)]
    assert out.terminated.all() and not out.truncated.any() and out.done.all()
    assert (out.episode_length == 1).all() and torch.equal(out.episode_return, out.reward)


def test_penalty_k_is_100():
    assert get_card("matrix_penalty").reward_range == (-100.0, 10.0)
    assert not get_card("matrix_penalty").requires_igm


def test_bad_actions_are_refused():
    env = make_env("matrix_climbing", n_envs=2)
    with pytest.raises(ValueError):
        env.step(torch.tensor([[0, 3], [0, 0]]))
    with pytest.raises(ValueError):
        env.step(torch.zeros(3, 2, dtype=torch.int64))


def test_unknown_task_lists_known_ones():
    with pytest.raises(UsageError, match="matrix_climbing"):
        get_task("smac_nope_map")
