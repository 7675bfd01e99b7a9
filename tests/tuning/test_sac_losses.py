"""Discrete SAC losses of sac-glam against naive references and at known optima (pure tensors, no LLM)."""

from __future__ import annotations

import math
import random

import pytest

torch = pytest.importorskip("torch")

from tfcaf.generator.tuning.losses import (polyak_update, sac_actor_loss, sac_alpha_loss, sac_critic_loss,  # noqa: E402
                                           sac_critic_target)
from tfcaf.generator.tuning.sacglam import nstep_transitions  # noqa: E402


def _naive_targets(rewards, terminal, n, gamma, V, alpha_term=0.0):
    """Loop reference: y_t = sum_{k<n, t+k<T} gamma^k r_{t+k} + gamma^m * V[t+m] unless the episode terminated."""
    T = len(rewards)
    out = []
    for t in range(T):
        y, k = 0.0, 0
        while k < n and t + k < T:
            y += gamma ** k * rewards[t + k]
            k += 1
        if not (terminal and t + k == T):
            y += gamma ** k * V[t + k]
        out.append(y)
    return out


@pytest.mark.parametrize("terminal", [True, False])
@pytest.mark.parametrize("n", [1, 2, 3, 5])
def test_nstep_critic_target_matches_naive_loop(terminal, n):
    rng = random.Random(n * 10 + terminal)
    T, A, gamma, alpha = 4, 3, 0.9, 0.2
    rewards = [rng.random() for _ in range(T)]
    obs = [f"s{t}" for t in range(T + 1)]
    trans = nstep_transitions(obs, [0] * T, rewards, terminal, n, gamma)
    torch.manual_seed(n)
    # per-state next-step quantities: pi, log pi and Q_targ of every s_t
    logits = torch.randn(T + 1, A)
    logp = torch.log_softmax(logits, -1)
    q = torch.randn(T + 1, A)
    V = [(logp[t].exp() * (q[t] - alpha * logp[t])).sum().item() for t in range(T + 1)]
    idx = [int(tr.next_obs[1:]) for tr in trans]
    y = sac_critic_target(torch.tensor([tr.ret for tr in trans]), torch.tensor([tr.discount for tr in trans]),
                          torch.tensor([tr.done for tr in trans]), logp[idx].exp(), logp[idx], q[idx], alpha)
    assert y.tolist() == pytest.approx(_naive_targets(rewards, terminal, n, gamma, V), abs=1e-5)
    assert [tr.done for tr in trans] == [terminal and t + min(n, T - t) == T for t in range(T)]


def test_critic_loss_is_zero_at_the_target_and_positive_elsewhere():
    target = torch.tensor([0.5, 1.0])
    assert float(sac_critic_loss(torch.stack([target, target]), target)) == 0.0
    assert float(sac_critic_loss(torch.stack([target + 1, target]), target)) == pytest.approx(1.0)


def test_actor_loss_minimum_is_the_soft_greedy_policy():
    """Single state, fixed Q: argmin_pi sum_a pi (alpha log pi - Q) = softmax(Q / alpha)."""
    q = torch.tensor([[1.0, 0.0, 0.5]])
    alpha = 0.5
    logits = torch.zeros(1, 3, requires_grad=True)
    opt = torch.optim.Adam([logits], lr=0.1)
    first_grad = None
    for i in range(400):
        logp = torch.log_softmax(logits, -1)
        loss = sac_actor_loss(logp.exp(), logp, q, alpha)
        opt.zero_grad()
        loss.backward()
        if i == 0:
            first_grad = logits.grad.clone()
        opt.step()
    optimum = torch.softmax(q / alpha, -1)
    assert torch.softmax(logits, -1).detach() == pytest.approx(optimum, abs=1e-3)
    # from uniform, the gradient raises the best action's logit and lowers the worst's
    assert first_grad[0, 0] < 0 < first_grad[0, 1]
    opt_loss = float(sac_actor_loss(optimum, optimum.log(), q, alpha))
    uni = torch.full((1, 3), 1 / 3)
    assert opt_loss < float(sac_actor_loss(uni, uni.log(), q, alpha))
    assert opt_loss == pytest.approx(-alpha * math.log(torch.exp(q / alpha).sum().item()), abs=1e-5)


@pytest.mark.parametrize("target, direction", [(0.1, -1), (1.0, +1)])
def test_alpha_moves_towards_the_target_entropy(target, direction):
    """Uniform over 3 actions has entropy log 3 = 1.10: a lower target lowers alpha, a target above the
    current entropy (a peaked policy, entropy ~0.5) raises it."""
    probs = torch.full((2, 3), 1 / 3) if direction < 0 else torch.tensor([[0.85, 0.1, 0.05]] * 2)
    log_alpha = torch.tensor(math.log(0.2), requires_grad=True)
    opt = torch.optim.SGD([log_alpha], lr=0.1)
    loss = sac_alpha_loss(log_alpha, probs, probs.log(), target)
    opt.zero_grad()
    loss.backward()
    opt.step()
    assert (float(log_alpha.detach()) - math.log(0.2)) * direction > 0


def test_polyak_update():
    torch.manual_seed(0)
    src, tgt = torch.nn.Linear(3, 2), torch.nn.Linear(3, 2)
    before = [p.detach().clone() for p in tgt.parameters()]
    polyak_update(tgt, src, 0.25)
    for b, t, s in zip(before, tgt.parameters(), src.parameters()):
        assert torch.allclose(t, 0.75 * b + 0.25 * s)
    polyak_update(tgt, src, 1.0)
    for t, s in zip(tgt.parameters(), src.parameters()):
        assert torch.equal(t, s)
