"""The TD loss pieces against naive per-episode reference implementations."""

from __future__ import annotations

import torch

from tfcaf.trainer import loss as L


def naive_nstep(r, term, length, qn, gamma, n, t):
    """G_t^(n) for one episode by direct summation; qn[t] is Q_tot'(s_{t+1})."""
    g, k = 0.0, 0
    while k < n and t + k < length:
        g += gamma ** k * r[t + k]
        if term[t + k]:
            return g
        k += 1
    return g + gamma ** k * qn[t + k - 1]


def naive_lambda(r, term, length, qn, gamma, lam, t):
    """The lambda-return as the (1 - lambda)-weighted average of n-step returns (Sutton & Barto 12.1)."""
    left = length - t
    total = sum((1 - lam) * lam ** (n - 1) * naive_nstep(r, term, length, qn, gamma, n, t) for n in range(1, left))
    return total + lam ** (left - 1) * naive_nstep(r, term, length, qn, gamma, left, t)


def random_episodes(b=5, t=7, seed=0):
    g = torch.Generator().manual_seed(seed)
    lengths = torch.randint(1, t + 1, (b,), generator=g)
    lengths[0] = t  # one full-length (truncated) episode
    mask = torch.arange(t).unsqueeze(0) < lengths.unsqueeze(1)  # [B, T]
    terminated = torch.zeros(b, t, dtype=torch.bool)
    for i in range(1, b, 2):  # odd episodes end by termination, even ones by truncation
        terminated[i, lengths[i] - 1] = True
    reward = torch.randn(b, t, generator=g, dtype=torch.float64) * mask
    next_q = torch.randn(b, t, generator=g, dtype=torch.float64)
    return reward, terminated, mask, next_q, lengths


def test_one_step_target_bootstraps_only_without_termination():
    r = torch.tensor([[1.0, 2.0]])
    term = torch.tensor([[False, True]])
    qn = torch.tensor([[10.0, 10.0]])
    y = L.one_step_targets(r, term, qn, gamma=0.5)
    assert y.tolist() == [[6.0, 2.0]]


def test_nstep_matches_naive_reference():
    reward, term, mask, qn, lengths = random_episodes()
    for n in (1, 2, 3, 10):
        y = L.nstep_targets(reward, term, mask, qn, 0.9, n)
        for b in range(reward.shape[0]):
            for t in range(int(lengths[b])):
                ref = naive_nstep(reward[b].tolist(), term[b].tolist(), int(lengths[b]), qn[b].tolist(), 0.9, n, t)
                assert abs(float(y[b, t]) - ref) < 1e-9, (n, b, t)


def test_td_lambda_matches_naive_weighted_average_of_nstep_returns():
    for seed in range(3):
        reward, term, mask, qn, lengths = random_episodes(seed=seed)
        for lam in (0.0, 0.6, 1.0):
            y = L.lambda_targets(reward, term, mask, qn, 0.95, lam)
            for b in range(reward.shape[0]):
                for t in range(int(lengths[b])):
                    ref = naive_lambda(reward[b].tolist(), term[b].tolist(), int(lengths[b]), qn[b].tolist(), 0.95, lam, t)
                    assert abs(float(y[b, t]) - ref) < 1e-9, (seed, lam, b, t)
            assert (y[~mask] == 0).all()


def test_lambda_zero_and_nstep_one_equal_one_step_on_real_steps():
    reward, term, mask, qn, _ = random_episodes(seed=4)
    one = L.one_step_targets(reward, term, qn, 0.99)
    assert torch.allclose(L.targets(reward, term, mask, qn, 0.99, td_lambda=0.0, n_step=1), one)
    assert torch.allclose(L.lambda_targets(reward, term, mask, qn, 0.99, 0.0)[mask], one[mask])


def test_double_q_uses_online_argmax_and_target_value_over_available_actions():
    online = torch.tensor([[[[5.0, 1.0, 9.0]]]])  # [B=1, T=1, N=1, A=3]
    target = torch.tensor([[[[100.0, 7.0, 3.0]]]])
    avail = torch.tensor([[[[True, True, False]]]])  # action 2 (online's favourite) unavailable
    assert L.next_action_values(online, target, avail, double_q=True).item() == 100.0  # online picks 0 among {0, 1}
    assert L.next_action_values(online, target, avail, double_q=False).item() == 100.0
    avail2 = torch.tensor([[[[False, True, True]]]])
    assert L.next_action_values(online, target, avail2, double_q=True).item() == 3.0  # online picks 2, target values it
    assert L.next_action_values(online, target, avail2, double_q=False).item() == 7.0  # plain max over {1, 2}


def test_no_available_action_in_padding_stays_finite():
    q = torch.zeros(1, 1, 2, 3)
    avail = torch.zeros(1, 1, 2, 3, dtype=torch.bool)
    assert torch.isfinite(L.next_action_values(q, q, avail)).all()


def test_masked_loss_ignores_padded_steps():
    q_tot = torch.tensor([[1.0, 2.0, 3.0]], requires_grad=True)
    y = torch.tensor([[0.0, 0.0, 1000.0]])
    mask = torch.tensor([[True, True, False]])
    loss, td = L.masked_td_loss(q_tot, y, mask)
    assert loss.item() == (1.0 + 4.0) / 2
    loss.backward()
    assert q_tot.grad[0, 2].item() == 0.0
    assert td[0, 2].item() == 0.0
