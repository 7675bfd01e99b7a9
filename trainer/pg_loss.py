"""Policy-gradient losses and estimators as pure functions of tensors (HAPPO / HATRPO / MAPPO).

Shapes: T steps of a rollout, E envs, N agents (time-major, as collected).
References: GAE (Schulman et al. 2016, eq. 16); PPO clip (Schulman et al. 2017, eq. 7); HAPPO's
sequential update with the factor M (Kuba et al. 2022, "Trust Region Policy Optimisation in Multi-Agent
RL", Algorithm 1 / HARL `happo.py`); TRPO's natural step with conjugate gradient and line search
(Schulman et al. 2015, Appendix C); ValueNorm (HARL `valuenorm.py`, after PopArt, van Hasselt 2016).
"""

from __future__ import annotations

from typing import Callable

import torch
from torch import nn


def gae(reward: torch.Tensor, value: torch.Tensor, done: torch.Tensor, terminated: torch.Tensor,
        final_value: torch.Tensor, gamma: float, lam: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Generalised advantage estimates and returns.

    reward [T, E, N] (the team reward broadcast per agent), value [T+1, E, N] (value[T] bootstraps the
    rollout's end), done/terminated [T, E] bool, final_value [T, E, N] (V of final_state where the episode
    was truncated at t). The value after step t is 0 if terminated, final_value if truncated, value[t+1]
    otherwise; the recursion restarts at every episode end:

        delta_t = r_t + gamma * v_next_t - V_t,   A_t = delta_t + gamma * lam * (1 - done_t) * A_{t+1}

    Returns (advantages [T, E, N], returns = advantages + value[:T]).
    """
    t_len = reward.shape[0]
    done_f = done.to(reward.dtype).unsqueeze(-1)  # [T, E, 1]
    term_f = terminated.to(reward.dtype).unsqueeze(-1)
    v_next = torch.where(done_f.bool(), (1.0 - term_f) * final_value, value[1:])  # [T, E, N]
    delta = reward + gamma * v_next - value[:-1]  # [T, E, N]
    adv = torch.zeros_like(reward)
    running = torch.zeros_like(reward[0])
    for t in range(t_len - 1, -1, -1):
        running = delta[t] + gamma * lam * (1.0 - done_f[t]) * running
        adv[t] = running
    return adv, adv + value[:-1]


class ValueNorm(nn.Module):
    """Running mean / variance of value targets with debiasing (HARL's ValueNorm, beta = 0.99999).

    The critic predicts normalised values; targets are normalised before the loss and predictions
    denormalised before GAE.
    """

    def __init__(self, beta: float = 0.99999, epsilon: float = 1e-5) -> None:
        super().__init__()
        self.beta, self.epsilon = beta, epsilon
        self.register_buffer("running_mean", torch.zeros(()))
        self.register_buffer("running_mean_sq", torch.zeros(()))
        self.register_buffer("debiasing_term", torch.zeros(()))

    def stats(self) -> tuple[torch.Tensor, torch.Tensor]:
        debias = self.debiasing_term.clamp_min(self.epsilon)
        mean = self.running_mean / debias
        var = (self.running_mean_sq / debias - mean ** 2).clamp_min(1e-2)
        return mean, var

    @torch.no_grad()
    def update(self, x: torch.Tensor) -> None:
        b = self.beta
        self.running_mean.mul_(b).add_(x.mean() * (1.0 - b))
        self.running_mean_sq.mul_(b).add_((x ** 2).mean() * (1.0 - b))
        self.debiasing_term.mul_(b).add_(1.0 - b)

    def normalize(self, x: torch.Tensor) -> torch.Tensor:
        mean, var = self.stats()
        return (x - mean) / var.sqrt()

    def denormalize(self, x: torch.Tensor) -> torch.Tensor:
        mean, var = self.stats()
        return x * var.sqrt() + mean


def huber(error: torch.Tensor, delta: float) -> torch.Tensor:
    """Elementwise Huber loss: 0.5 e^2 for |e| <= delta, else delta (|e| - 0.5 delta)."""
    a = error.abs()
    return torch.where(a <= delta, 0.5 * error ** 2, delta * (a - 0.5 * delta))


def value_loss(values: torch.Tensor, old_values: torch.Tensor, targets: torch.Tensor, clip: float,
               use_huber: bool = True, huber_delta: float = 10.0, clipped: bool = True) -> torch.Tensor:
    """PPO value loss (all tensors in the normalised space, same shape): the larger of the clipped and
    unclipped errors, Huber or squared, averaged.  V_clip = V_old + clamp(V - V_old, -clip, clip)."""
    v_clipped = old_values + (values - old_values).clamp(-clip, clip)
    loss_fn = (lambda e: huber(e, huber_delta)) if use_huber else (lambda e: 0.5 * e ** 2)
    original = loss_fn(targets - values)
    if not clipped:
        return original.mean()
    return torch.max(original, loss_fn(targets - v_clipped)).mean()


def happo_surrogate(log_prob: torch.Tensor, old_log_prob: torch.Tensor, advantage: torch.Tensor,
                    factor: torch.Tensor, clip: float) -> torch.Tensor:
    """HAPPO's clipped objective for agent i_m (to maximise; the loss is its negative):

        E[ M * min(r A, clip(r, 1 - eps, 1 + eps) A) ],  r = pi_new / pi_old,
        M = prod_{j updated before i_m} pi_j_new / pi_j_old   (M = 1: MAPPO / the first agent).
    All arguments share one shape."""
    ratio = torch.exp(log_prob - old_log_prob)
    surr = torch.min(ratio * advantage, ratio.clamp(1.0 - clip, 1.0 + clip) * advantage)
    return (factor.detach() * surr).mean()


def categorical_kl(old_logits: torch.Tensor, new_logits: torch.Tensor) -> torch.Tensor:
    """KL(pi_old || pi_new) per sample for (masked) logits [..., A] -> [...]."""
    old_logp = torch.log_softmax(old_logits, -1)
    new_logp = torch.log_softmax(new_logits, -1)
    return (old_logp.exp() * (old_logp - new_logp)).sum(-1)


def conjugate_gradient(fvp: Callable[[torch.Tensor], torch.Tensor], b: torch.Tensor, iters: int = 10,
                       tol: float = 1e-10) -> torch.Tensor:
    """Solve F x = b for a symmetric positive-definite F given only products F v."""
    x = torch.zeros_like(b)
    r, p = b.clone(), b.clone()
    rr = r @ r
    for _ in range(iters):
        fp = fvp(p)
        alpha = rr / (p @ fp).clamp_min(1e-12)
        x = x + alpha * p
        r = r - alpha * fp
        rr_new = r @ r
        if rr_new < tol:
            break
        p = r + (rr_new / rr) * p
        rr = rr_new
    return x


def flat_params(module: nn.Module) -> torch.Tensor:
    return torch.cat([p.detach().reshape(-1) for p in module.parameters()])


def set_flat_params(module: nn.Module, flat: torch.Tensor) -> None:
    i = 0
    with torch.no_grad():
        for p in module.parameters():
            n = p.numel()
            p.copy_(flat[i:i + n].view_as(p))
            i += n
