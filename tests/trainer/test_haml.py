"""HAPPO / HATRPO / MAPPO mechanics on tiny rollouts: the factor M, agent orders, MAPPO = HAPPO with M = 1
and simultaneous updates, HATRPO's KL bound and revert, and recurrent / FP variants."""

from __future__ import annotations

import copy

import pytest
import torch
from toyenv import CountdownEnv

from tfcaf.tasks.registry import make_env
from tfcaf.trainer import haml
from tfcaf.trainer import pg_loss as P
from tfcaf.trainer.algos import ALGOS
from tfcaf.trainer.config import resolve_config
from tfcaf.trainer.haml import HALearner, HAPolicy, HAValue, Scheme
from tfcaf.trainer.onpolicy import RolloutCollector


def build(algo: str, env=None, **flags):
    env = env or CountdownEnv(8)
    cfg, _ = resolve_config("toy", flags={"pg_hidden": 16, "rollout_length": 12, "ppo_epoch": 2, "num_mini_batch": 2,
                                          **flags}, algo=algo)
    spec = ALGOS[algo]
    torch.manual_seed(0)
    policy, critic = HAPolicy(env.card, cfg), HAValue(env.card, cfg)
    learner = HALearner(policy, critic, cfg, Scheme(spec.sequential, spec.trust_region), seed=0)
    collector = RolloutCollector(env, policy, critic, cfg.rollout_length, generator=torch.Generator().manual_seed(0))
    return learner, collector


def test_happo_factor_is_one_for_the_first_agent_and_not_after(monkeypatch):
    learner, collector = build("happo")
    seen = []
    real = P.happo_surrogate

    def spy(log_prob, old, adv, factor, clip):
        seen.append(factor.detach().clone())
        return real(log_prob, old, adv, factor, clip)

    monkeypatch.setattr(haml.P, "happo_surrogate", spy)
    learner.update(collector.run())
    per_agent = len(seen) // 2  # ppo_epoch x mini-batches calls per agent
    assert all(torch.equal(f, torch.ones_like(f)) for f in seen[:per_agent])
    assert any(not torch.allclose(f, torch.ones_like(f)) for f in seen[per_agent:])
    assert learner.last_factor_dev[0] > 0  # M after the first agent's update differs from 1


def test_a_fresh_random_agent_order_every_iteration_unless_fixed():
    learner, collector = build("happo", env=make_env("matrix_climbing", n_envs=8, seed=0))
    orders = set()
    for _ in range(8):
        learner.update(collector.run())
        orders.add(tuple(learner.last_order))
    assert orders == {(0, 1), (1, 0)}
    fixed, collector = build("happo", env=make_env("matrix_climbing", n_envs=8, seed=0), fixed_order=True)
    for _ in range(4):
        fixed.update(collector.run())
        assert fixed.last_order == [0, 1]


def test_mappo_equals_happo_with_m_one_and_simultaneous_updates(monkeypatch):
    happo, c1 = build("happo")
    mappo, c2 = build("mappo", share_param=False)
    rollout = c1.run()
    mappo.policy.load_state_dict(happo.policy.state_dict())
    mappo.critic.load_state_dict(happo.critic.state_dict())
    real = P.happo_surrogate
    # HAPPO run as if M stayed 1: every agent's loss ignores the factor
    monkeypatch.setattr(haml.P, "happo_surrogate",
                        lambda lp, old, adv, factor, clip: real(lp, old, adv, torch.ones_like(factor), clip))
    happo.update(copy.deepcopy(rollout))
    monkeypatch.setattr(haml.P, "happo_surrogate", real)
    mappo.update(copy.deepcopy(rollout))
    for a, b in zip(happo.policy.state_dict().values(), mappo.policy.state_dict().values()):
        assert torch.allclose(a, b, atol=1e-6)
    # ... and real HAPPO (M from the earlier agents) updates the later agent differently
    happo2, _ = build("happo")
    happo2.policy.load_state_dict(mappo.policy.state_dict())  # any weights; compare against an M = 1 copy
    m1 = copy.deepcopy(happo2)
    happo2.update(copy.deepcopy(rollout))
    monkeypatch.setattr(haml.P, "happo_surrogate",
                        lambda lp, old, adv, factor, clip: real(lp, old, adv, torch.ones_like(factor), clip))
    m1.update(copy.deepcopy(rollout))
    second = happo2.last_order[1]
    differs = [not torch.allclose(a, b) for a, b in zip(happo2.policy.nets[second].parameters(),
                                                        m1.policy.nets[second].parameters())]
    assert any(differs)


def test_mappo_shares_one_actor_by_default_and_happo_does_not():
    mappo, _ = build("mappo")
    happo, _ = build("happo")
    assert len(mappo.policy.nets) == 1 and len(happo.policy.nets) == 2


def _kl_between(policy_before, policy_after, rollout, agent):
    x = policy_before.inputs(rollout.data["obs"][:-1])[:, :, agent]
    avail = rollout.data["avail"][:-1][:, :, agent]
    with torch.no_grad():
        return float(P.categorical_kl(policy_before.actor(agent).logits(x, avail),
                                      policy_after.actor(agent).logits(x, avail)).mean())


def test_hatrpo_step_respects_the_kl_bound():
    learner, collector = build("hatrpo", kl_threshold=0.01)
    for _ in range(3):
        rollout = collector.run()
        before = copy.deepcopy(learner.policy)
        stats = learner.update(rollout)
        for agent in range(2):
            assert _kl_between(before, learner.policy, rollout, agent) < 0.01 + 1e-6
    assert stats["accepted"] is not None


def test_hatrpo_reverts_when_the_line_search_fails(monkeypatch):
    learner, collector = build("hatrpo", ls_step=2)
    rollout = collector.run()
    before = copy.deepcopy(learner.policy.state_dict())
    real_kl = P.categorical_kl
    calls = {"n": 0}

    def huge_after_the_fvps(old, new):
        # Fisher-vector products need the real KL; the line-search checks (no grad) see a violated bound.
        if torch.is_grad_enabled():
            return real_kl(old, new)
        calls["n"] += 1
        return real_kl(old, new) + 1.0

    monkeypatch.setattr(haml.P, "categorical_kl", huge_after_the_fvps)
    stats = learner.update(rollout)
    assert calls["n"] >= 2 and stats["accepted"] == 0.0
    for k, v in learner.policy.state_dict().items():
        assert torch.equal(v, before[k]), k


@pytest.mark.parametrize("algo", ["happo", "hatrpo", "mappo"])
def test_recurrent_and_fp_variants_update(algo):
    learner, collector = build(algo, recurrent=True, value_kind="fp")
    stats = learner.update(collector.run())
    assert stats["value_loss"] is not None and learner.updates == 1
    assert learner.policy.state_size == 16 and learner.critic.heads == 2


def test_action_masks_are_respected_while_sampling():
    # CountdownEnv asserts that no unavailable action is taken
    learner, collector = build("happo")
    for _ in range(3):
        learner.update(collector.run())
