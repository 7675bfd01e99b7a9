"""Batched collection (streaming over auto-resetting envs) and the episode replay buffer."""

from __future__ import annotations

import torch
from toyenv import LIMIT, CountdownEnv

from tfcaf.trainer.agent import RNNAgent, build_inputs, input_dim
from tfcaf.trainer.buffer import ReplayBuffer, empty_batch
from tfcaf.trainer.collector import Collector, epsilon_at, select_actions


def make_collector(n_envs=3, seed=0):
    env = CountdownEnv(n_envs)
    torch.manual_seed(seed)
    agent = RNNAgent(input_dim(2, 2, 3, True, True), 3, hidden=8)
    return Collector(env, agent, generator=torch.Generator().manual_seed(seed)), env


def test_episodes_are_stored_with_t_plus_1_steps_and_padding_mask():
    collector, env = make_collector()
    batch = collector.run(12, epsilon=1.0)
    assert batch.size >= 12
    assert batch.obs.shape == (batch.size, LIMIT + 1, 2, 2) and batch.actions.shape == (batch.size, LIMIT, 2)
    for i in range(batch.size):
        n = int(batch.length[i])
        assert 1 <= n <= LIMIT
        assert batch.mask[i, :n].all() and not batch.mask[i, n:].any()
        # obs[t] carries t: the stored steps are 0..n, including the final observation at n
        assert batch.obs[i, : n + 1, 0, 0].tolist() == [float(t) for t in range(n + 1)]
        assert float(batch.episode_return[i]) == float(batch.reward[i, :n].sum())
        assert (batch.reward[i, n:] == 0).all()
        # termination flags: at most one, at the last step, and never on a truncated (full-length, cut) episode
        assert int(batch.terminated[i].sum()) <= 1
        if batch.terminated[i].any():
            assert bool(batch.terminated[i, n - 1])
        if n == LIMIT:
            assert not batch.terminated[i].any()


def test_collector_respects_available_actions_and_counts_steps():
    collector, env = make_collector(n_envs=4)
    batch = collector.run(20, epsilon=1.0)  # CountdownEnv asserts on any unavailable action
    assert collector.env_steps % 4 == 0 and collector.env_steps >= int(batch.length.sum())
    odd = batch.mask.clone()
    odd[:, 0::2] = False
    assert not (batch.actions[odd] == 2).any()


def test_first_only_returns_exactly_one_episode_per_env():
    collector, env = make_collector(n_envs=5)
    collector.reset()
    batch = collector.run(5, epsilon=0.0, first_only=True)
    assert batch.size == 5
    assert sorted(batch.length.tolist()) == [1, 2, 3, 4, 5]  # env e's first episode lasts e + 1 steps


def test_epsilon_schedule_and_greedy_selection():
    assert epsilon_at(0, 1.0, 0.05, 100) == 1.0
    assert abs(epsilon_at(50, 1.0, 0.05, 100) - 0.525) < 1e-12
    assert epsilon_at(10_000, 1.0, 0.05, 100) == 0.05
    q = torch.tensor([[[1.0, 5.0, 3.0]]])
    avail = torch.tensor([[[True, False, True]]])
    assert select_actions(q, avail, 0.0).item() == 2
    g = torch.Generator().manual_seed(0)
    picks = torch.stack([select_actions(q, avail, 1.0, g) for _ in range(200)])
    assert set(picks.flatten().tolist()) == {0, 2}


def test_build_inputs_one_hots():
    obs = torch.zeros(1, 2, 3)
    x = build_inputs(obs, torch.tensor([[-1, 1]]), 3, agent_id=True, last_action=True)  # [1, 2, 3 + 3 + 2]
    assert x.shape == (1, 2, 8)
    assert x[0, 0, 3:6].tolist() == [0, 0, 0] and x[0, 1, 3:6].tolist() == [0, 1, 0]
    assert x[0, 0, 6:].tolist() == [1, 0] and x[0, 1, 6:].tolist() == [0, 1]


def test_agent_sequence_forward_equals_stepwise():
    torch.manual_seed(0)
    agent = RNNAgent(5, 3, hidden=8)
    x = torch.randn(2, 4, 3, 5)  # [B, T, N, D]
    q_seq = agent(x)  # [B, T, N, A]
    h = agent.initial_hidden(2 * 3)
    for t in range(4):
        q_t, h = agent.step(x[:, t].reshape(6, 5), h)
        assert torch.allclose(q_t.view(2, 3, 3), q_seq[:, t], atol=1e-6)


def test_buffer_ring_overwrites_oldest_and_samples_truncated():
    buf = ReplayBuffer(4, steps=6, n_agents=2, obs_dim=1, state_dim=1, n_actions=2)
    for k in range(6):
        b = empty_batch(1, 6, 2, 1, 1, 2)
        b.reward[0, 0] = float(k)
        b.length[0] = 1 + k % 3
        b.mask[0, : 1 + k % 3] = True
        buf.add(b)
    assert len(buf) == 4 and buf.episodes_added == 6
    assert sorted(buf.data.reward[:, 0].tolist()) == [2.0, 3.0, 4.0, 5.0]
    sample = buf.sample(4, torch.Generator().manual_seed(0))
    assert sorted(sample.reward[:, 0].tolist()) == [2.0, 3.0, 4.0, 5.0]  # distinct episodes
    assert sample.reward.shape[1] == 3 and sample.obs.shape[1] == 4  # cut to the longest (3 transitions)


def test_buffer_refuses_oversampling():
    buf = ReplayBuffer(4, steps=2, n_agents=1, obs_dim=1, state_dim=1, n_actions=2)
    buf.add(empty_batch(2, 2, 1, 1, 1, 2))
    assert not buf.can_sample(3)
    try:
        buf.sample(3)
    except ValueError as err:
        assert "3 requested" in str(err)
    else:
        raise AssertionError("sampling more episodes than stored must fail")
