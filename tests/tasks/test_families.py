"""Family-specific checks of the LBF, MPE and VMAS adapters against their simulators, and of the
feature expressions against the sandbox's gate."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from tfcaf.errors import UsageError
from tfcaf.tasks.env import random_actions
from tfcaf.tasks.features import check_expressions, evaluate, feature_source
from tfcaf.tasks.registry import TASKS, get_card, make_env


@pytest.mark.parametrize("scenario", ["2s-8x8-2p-2f-coop", "2s-10x10-3p-3f", "15x15-4p-3f", "8x8-2p-3f"])
def test_lbf_card_matches_lbforaging(scenario):
    gymnasium = pytest.importorskip("gymnasium")
    pytest.importorskip("lbforaging")
    from tfcaf.tasks.lbf import parse_scenario

    sc = parse_scenario(scenario)
    raw = gymnasium.make(sc.gym_id).unwrapped
    card = get_card(f"lbf_{scenario}")
    assert card.obs_dim == raw.observation_space[0].shape[0]
    assert card.n_agents == raw.n_agents and card.n_actions == raw.action_space[0].n
    low, high = raw.observation_space[0].low, raw.observation_space[0].high
    for s in card.state_slices[:2]:  # agent 0's slices lie inside lbforaging's (looser) declared space
        assert s.low >= low[s.start:s.stop].min() and s.high <= high[s.start:s.stop].max(), s.name


def test_lbf_state_is_concatenated_obs_and_avail_is_lbf_valid_actions():
    pytest.importorskip("lbforaging")
    env = make_env("lbf_8x8-2p-3f", n_envs=3, seed=5)
    out = env.reset(seed=5)
    gen = torch.Generator().manual_seed(5)
    returns = []
    for _ in range(120):
        assert torch.equal(out.state, out.obs.reshape(3, -1))
        for i, raw in enumerate(env.envs):
            for k, player in enumerate(raw.players):
                valid = {a.value for a in raw._valid_actions[player]}
                assert set(out.avail_actions[i, k].nonzero().flatten().tolist()) == valid
        out = env.step(random_actions(out.avail_actions, gen))
        returns += out.episode_return[out.done].tolist()
    assert returns and max(returns) <= 1.0 + 1e-5


def test_lbf_rewards_follow_loading_and_only_cleared_maps_terminate():
    """Random walkers that always load when they can: loads earn reward, an episode terminates only
    when all food is gone (return exactly 1), otherwise it is truncated at the limit with less."""
    pytest.importorskip("lbforaging")
    env = make_env("lbf_8x8-2p-3f", n_envs=8, seed=0)
    out = env.reset(seed=0)
    gen = torch.Generator().manual_seed(0)
    earned = 0.0
    ends = 0
    for _ in range(300):
        avail = out.avail_actions  # [E, N, A]
        walk = random_actions(avail, gen)
        actions = torch.where(avail[:, :, 5], 5, walk)
        out = env.step(actions)
        earned += float(out.reward.sum())
        ret = out.episode_return
        assert (ret[out.terminated] - 1.0).abs().max().item() < 1e-5 if out.terminated.any() else True
        assert (ret[out.truncated] < 1.0 - 1e-6).all()
        assert (out.episode_length[out.truncated] == 50).all()
        ends += int(out.done.sum())
    assert earned > 0 and ends >= 8


def test_mpe_state_is_mpe2_state_and_reward_is_the_agents_sum():
    pytest.importorskip("mpe2")
    env = make_env("mpe_simple_spread", n_envs=2, seed=1)
    out = env.reset(seed=1)
    assert torch.equal(out.state, out.obs.reshape(2, -1))
    assert torch.allclose(out.state[0], torch.from_numpy(np.asarray(env.envs[0].state(), np.float32)))
    out = env.step(torch.zeros(2, 3, dtype=torch.int64))
    raw = env.envs[0].unwrapped
    expected = sum(raw.rewards.values())
    assert abs(float(out.reward[0]) - expected) < 1e-5


def test_vmas_action_meanings_and_partial_auto_reset():
    pytest.importorskip("vmas")
    env = make_env("vmas_simple_spread", n_envs=9, seed=0)
    out = env.reset(seed=0)
    out = env.step(torch.arange(9)[:, None].expand(9, 3).contiguous())
    vel = out.obs[:, 0, 2:4]  # agent 0's velocity after one step of each action
    meanings = env.card.action_meanings
    for a in range(9):
        for axis, name in ((0, "x"), (1, "y")):
            if f"+{name}" in meanings[a]:
                assert vel[a, axis] > 0, (a, meanings[a])
            elif f"-{name}" in meanings[a]:
                assert vel[a, axis] < 0, (a, meanings[a])
            else:
                assert abs(float(vel[a, axis])) < 1e-6, (a, meanings[a])
    # balance episodes end at different times (the package falls): the others must keep running
    env = make_env("vmas_balance", n_envs=16, seed=0)
    out = env.reset(seed=0)
    gen = torch.Generator().manual_seed(0)
    partial = 0
    for _ in range(100):
        out = env.step(random_actions(out.avail_actions, gen))
        done = out.done
        if done.any() and not done.all():
            partial += 1
            assert not torch.equal(out.state[done], out.final_state[done]), "done envs restart"
            assert torch.equal(out.state[~done], out.final_state[~done])
    assert partial > 0


@pytest.mark.parametrize("name", sorted(TASKS))
def test_feature_expressions_are_plain_torch(name):
    card = get_card(name)
    assert check_expressions(card) == []
    if card.features:
        source = feature_source(card)
        assert all(f"{f.name} = " in source for f in card.features)


@pytest.mark.parametrize("name", ["smac_3m", "smac_smacv2_5_units", "lbf_15x15-4p-3f", "mpe_simple_spread", "vmas_navigation"])
def test_features_pass_the_sandbox_gate_as_a_candidate(name):
    """Every feature, rendered into a candidate, passes the AST gate and runs under RestrictedPython."""
    astgate = pytest.importorskip("tfcaf.sandbox.astgate")
    namespace = pytest.importorskip("tfcaf.sandbox.namespace")
    card = get_card(name)
    names = [f.name for f in card.features]
    source = ("import torch\n\n\ndef QLLMNetwork(agents_q, global_state):\n" + feature_source(card) + "\n"
              f"    total = {' + '.join(f'torch.nan_to_num({n})' for n in names)}\n"
              "    w = 1.0 + torch.sigmoid(total)\n"
              "    return torch.sum(agents_q * w, dim=1, keepdim=True)\n")
    gate = astgate.check_module(source)
    fn = namespace.load_candidate(gate)
    gs = torch.rand(5, card.state_dim)
    q = fn(torch.zeros(5, card.n_agents), gs)
    assert q.shape == (5, 1) and torch.equal(q, torch.zeros(5, 1))
    ref = evaluate(card, gs)
    assert set(ref) == set(names)


def test_unknown_feature_is_a_usage_error():
    with pytest.raises(UsageError, match="health"):
        evaluate(get_card("smac_3m"), torch.zeros(1, 72), ["bogus"])
