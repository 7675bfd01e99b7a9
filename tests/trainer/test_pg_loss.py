"""GAE (with truncation), ValueNorm, the value loss, the HAPPO surrogate and conjugate gradient, against
naive references on tiny tensors."""

from __future__ import annotations

import torch

from tfcaf.trainer import pg_loss as P


def naive_gae(reward, value, done, terminated, final_value, gamma, lam):
    """Per env and agent, step by step in Python: the textbook recursion with the bootstrap rules spelled out."""
    t_len, e_len, n_len = reward.shape
    adv = torch.zeros_like(reward)
    for e in range(e_len):
        for n in range(n_len):
            running = 0.0
            for t in reversed(range(t_len)):
                if bool(done[t, e]):
                    nxt = 0.0 if bool(terminated[t, e]) else float(final_value[t, e, n])
                    running = 0.0
                else:
                    nxt = float(value[t + 1, e, n])
                delta = float(reward[t, e, n]) + gamma * nxt - float(value[t, e, n])
                running = delta + gamma * lam * running
                adv[t, e, n] = running
    return adv


def test_gae_matches_the_naive_recursion_with_termination_and_truncation():
    g = torch.Generator().manual_seed(0)
    t, e, n = 7, 3, 2
    reward = torch.rand(t, e, n, generator=g)
    value = torch.rand(t + 1, e, n, generator=g)
    final_value = torch.rand(t, e, n, generator=g) * 5
    done = torch.zeros(t, e, dtype=torch.bool)
    terminated = torch.zeros(t, e, dtype=torch.bool)
    done[2, 0] = terminated[2, 0] = True  # a real end: no bootstrap
    done[4, 1] = True  # truncated: bootstrap from V(final_state), not from the next episode's first value
    done[6, 2] = True  # truncated at the rollout's last step
    adv, ret = P.gae(reward, value, done, terminated, final_value, 0.9, 0.8)
    ref = naive_gae(reward, value, done, terminated, final_value, 0.9, 0.8)
    assert torch.allclose(adv, ref, atol=1e-5)
    assert torch.allclose(ret, adv + value[:-1])
    # truncation really uses final_value: changing it changes the advantage at that step
    fv2 = final_value.clone()
    fv2[4, 1] += 1.0
    adv2, _ = P.gae(reward, value, done, terminated, fv2, 0.9, 0.8)
    assert torch.isclose(adv2[4, 1, 0] - adv[4, 1, 0], torch.tensor(0.9))
    assert torch.equal(adv2[5:, 1], adv[5:, 1])  # the next episode is untouched


def test_gae_with_lambda_one_is_the_discounted_return_minus_value():
    reward = torch.ones(4, 1, 1)
    value = torch.zeros(5, 1, 1)
    done = torch.tensor([[False], [False], [False], [True]])
    adv, ret = P.gae(reward, value, done, done.clone(), torch.zeros(4, 1, 1), 0.5, 1.0)
    assert torch.allclose(ret.flatten(), torch.tensor([1.875, 1.75, 1.5, 1.0]))


def test_value_norm_tracks_mean_and_variance_and_round_trips():
    vn = P.ValueNorm(beta=0.9)
    g = torch.Generator().manual_seed(1)
    for _ in range(300):
        vn.update(torch.randn(256, generator=g) * 3.0 + 5.0)
    mean, var = vn.stats()
    assert abs(float(mean) - 5.0) < 0.3 and abs(float(var) - 9.0) < 1.5
    x = torch.tensor([1.0, 5.0, 9.0])
    assert torch.allclose(vn.denormalize(vn.normalize(x)), x, atol=1e-5)
    assert abs(float(vn.normalize(torch.tensor(5.0)))) < 0.1


def test_value_loss_clips_and_hubers():
    old = torch.zeros(3)
    target = torch.tensor([0.0, 20.0, 0.5])
    values = torch.tensor([1.0, 1.0, 0.1])
    # unclipped, squared: 0.5 * e^2
    assert torch.isclose(P.value_loss(values, old, target, 0.2, use_huber=False, clipped=False),
                         (0.5 * (target - values) ** 2).mean())
    # Huber is linear past delta
    assert torch.isclose(P.huber(torch.tensor(20.0), 10.0), torch.tensor(150.0))
    # clipped: max of the errors of V and of V_old + clip(V - V_old)
    clipped = P.value_loss(values, old, target, 0.2, use_huber=False, clipped=True)
    v_c = old + (values - old).clamp(-0.2, 0.2)
    ref = torch.max(0.5 * (target - values) ** 2, 0.5 * (target - v_c) ** 2).mean()
    assert torch.isclose(clipped, ref)


def test_happo_surrogate_is_clipped_and_weighted_by_m():
    old = torch.zeros(2)
    new = torch.log(torch.tensor([1.5, 0.5]))
    adv = torch.tensor([1.0, -1.0])
    one = torch.ones(2)
    # ratio 1.5 with A > 0 is clipped to 1.2; ratio 0.5 with A < 0 is clipped to 0.8
    assert torch.isclose(P.happo_surrogate(new, old, adv, one, 0.2), torch.tensor((1.2 - 0.8) / 2))
    assert torch.isclose(P.happo_surrogate(new, old, adv, 2 * one, 0.2), torch.tensor(1.2 - 0.8))


def test_conjugate_gradient_solves_a_small_spd_system():
    a = torch.tensor([[4.0, 1.0, 0.0], [1.0, 3.0, 0.5], [0.0, 0.5, 2.0]])
    b = torch.tensor([1.0, 2.0, 3.0])
    x = P.conjugate_gradient(lambda v: a @ v, b, iters=10)
    assert torch.allclose(a @ x, b, atol=1e-5)


def test_categorical_kl_is_zero_for_equal_and_positive_otherwise():
    logits = torch.tensor([[0.0, 1.0, -1.0]])
    assert float(P.categorical_kl(logits, logits)) < 1e-7
    assert float(P.categorical_kl(logits, logits.flip(-1))) > 0.1
