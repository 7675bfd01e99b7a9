"""The tuning losses on tiny tensors: TBRM at the analytic optimum of a one-step bandit, its gradient,
naive references, the KL-regularised policy gradient and SFT."""

from __future__ import annotations

import pytest
import torch

from tfcaf.generator.tuning.losses import kl_pg_loss, sequence_kl, sft_loss, tbrm_loss, tbrm_residual, token_logprobs


def _bandit(beta: float, seed: int = 0, actions: int = 6):
    g = torch.Generator().manual_seed(seed)
    ref = torch.log_softmax(torch.randn(1, actions, generator=g), -1)  # [1, A] log pi_ref
    r = torch.rand(actions, generator=g)  # [A] reward per action
    z_opt = ref + r / beta  # [1, A]: the analytic optimum (any constant shift of ref would break it)
    return ref, r, z_opt


@pytest.mark.parametrize("beta", [0.01, 0.1, 1.0])
def test_tbrm_is_zero_at_the_bandit_optimum_for_every_action(beta):
    ref, r, z = _bandit(beta)
    for a in range(r.shape[0]):
        lp = torch.log_softmax(z, -1)[:, [a]]  # [1, 1]
        loss = tbrm_loss(z, lp, ref[:, [a]], torch.ones(1, 1), r[[a]], beta=beta)
        assert float(loss) < 1e-9
    # and softmax(z*) is the KL-regularised optimum pi_ref * exp(r / beta) / Z
    target = torch.softmax(ref + r / beta, -1)
    assert torch.allclose(torch.softmax(z, -1), target, atol=1e-6)


def test_tbrm_is_positive_off_the_optimum_and_its_gradient_reaches_the_first_position_logits():
    beta = 0.5
    ref, r, z = _bandit(beta)
    z = (z + 0.3 * torch.randn_like(z)).requires_grad_(True)
    a = 2
    lp = torch.log_softmax(z, -1)[:, [a]]
    loss = tbrm_loss(z, lp, ref[:, [a]], torch.ones(1, 1), r[[a]], beta=beta)
    assert float(loss) > 1e-4
    loss.backward()
    assert z.grad is not None and float(z.grad.abs().sum()) > 0
    # z_a enters twice (V and log pi): beta * (lse + z_a - lse) = beta * z_a, so only z_a gets gradient
    others = [i for i in range(z.shape[1]) if i != a]
    assert float(z.grad[0, a].abs()) > 0 and float(z.grad[0, others].abs().max()) < 1e-6


def test_tbrm_matches_a_naive_loop_with_and_without_length_normalisation():
    g = torch.Generator().manual_seed(3)
    B, T, V = 3, 5, 7
    first = torch.randn(B, V, generator=g)
    lp, ref = -torch.rand(B, T, generator=g), -torch.rand(B, T, generator=g)
    mask = torch.tensor([[1, 1, 1, 1, 1], [1, 1, 0, 0, 0], [1, 1, 1, 0, 0]], dtype=torch.float)
    reward = torch.rand(B, generator=g)
    for norm in (False, True):
        want = []
        for b in range(B):
            n = int(mask[b].sum())
            s = sum(float(lp[b, t] - ref[b, t]) for t in range(n))
            s = s / n if norm else s
            want.append((0.2 * float(torch.logsumexp(first[b], -1)) + 0.2 * s - float(reward[b])) ** 2)
        got = tbrm_loss(first, lp, ref, mask, reward, beta=0.2, length_norm=norm)
        assert abs(float(got) - sum(want) / B) < 1e-5
    assert tbrm_residual(first, lp, ref, mask, reward).shape == (B,)


def test_token_logprobs_and_sft():
    logits = torch.tensor([[[2.0, 0.0, 0.0], [0.0, 0.0, 3.0]]])  # [1, 2, 3]
    lp = token_logprobs(logits, torch.tensor([[0, 2]]))
    assert torch.allclose(lp, torch.log_softmax(logits, -1)[0, [0, 1], [0, 2]].unsqueeze(0))
    mask = torch.tensor([[1.0, 0.0]])
    assert torch.isclose(sft_loss(lp, mask), -lp[0, 0])


def test_kl_pg_pushes_up_the_better_answer_and_charges_kl():
    lp = torch.tensor([[-1.0, -1.0], [-1.0, -1.0]], requires_grad=True)
    ref = torch.tensor([[-1.0, -1.0], [-3.0, -3.0]])  # the second answer drifted 4 nats from the reference
    mask = torch.ones(2, 2)
    loss, info = kl_pg_loss(lp, ref, mask, torch.tensor([1.0, 0.0]), kl_coef=0.1)
    loss.backward()
    assert float(lp.grad[0].sum()) < 0 < float(lp.grad[1].sum())  # descent raises answer 0, lowers answer 1
    assert info["kl"] == pytest.approx(2.0)
    assert torch.allclose(sequence_kl(lp.detach(), ref, mask), torch.tensor([0.0, 4.0]))
