"""Losses of `tfcaf tune`, as pure functions of tensors.

Shapes: B sequences, T response positions (padded; `mask` [B, T] is 1 on real response tokens), V
vocabulary. `logprobs` are log pi_theta(y_t | x, y_<t) of the tokens actually in the response.

- `sft_loss`: rejection-sampling fine-tuning (RFT; Yuan et al. 2023, "Scaling relationship on learning
  mathematical reasoning with LLMs", sec. 3.3): negative log-likelihood of the accepted answers.
- `tbrm_loss`: Trajectory Bellman Residual Minimisation (Yuan et al. 2025, "Trajectory Bellman Residual
  Minimization: A Simple Value-Based Method for LLM Reasoning", eq. 7): the logits z are Q-values,
  Q = beta*z, V = beta*logsumexp(z), and one squared residual per trajectory
  (V_theta(x) + beta * sum_t [log pi_theta(y_t|x,y<t) - log pi_ref(y_t|x,y<t)] - r(x,y))^2,
  with V_theta(x) read at the first response position.
- `kl_pg_loss`: CORY's update (Ma et al. 2024, "Coevolving with the Other You: Fine-Tuning LLM with
  Sequential Cooperative Multi-Agent Reinforcement Learning", sec. 4) uses PPO with a value head; we use a
  named critic-free variant, *KL-regularised REINFORCE with a group-mean baseline* (the mean over the
  pioneer/observer pairs drawn for one prompt; a running mean when there is one pair): the reward is shaped
  by the sequence KL to the frozen reference, r - kl_coef * sum_t (log pi - log pi_ref), as in CORY's
  eq. 3 (the reward CORY's PPO maximises), and the advantage is that minus the batch mean.
"""

from __future__ import annotations

from typing import Any

import torch


def token_logprobs(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """log softmax(logits)[labels]. logits [B, T, V], labels [B, T] -> [B, T].

    >>> token_logprobs(torch.zeros(1, 2, 4), torch.tensor([[0, 3]])).exp()
    tensor([[0.2500, 0.2500]])
    """
    return torch.log_softmax(logits.float(), dim=-1).gather(-1, labels.unsqueeze(-1)).squeeze(-1)


def sft_loss(logprobs: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """RFT / SFT: -sum(mask * logprobs) / sum(mask) (token-mean NLL). logprobs, mask [B, T] -> scalar."""
    return -(logprobs * mask).sum() / mask.sum().clamp_min(1.0)


def tbrm_residual(first_logits: torch.Tensor, logprobs: torch.Tensor, ref_logprobs: torch.Tensor,
                  mask: torch.Tensor, reward: torch.Tensor, beta: float = 0.1,
                  length_norm: bool = False) -> torch.Tensor:
    """TBRM's per-trajectory Bellman residual. first_logits [B, V], logprobs/ref_logprobs/mask [B, T],
    reward [B] -> residual [B].

    residual = beta * logsumexp(z_0) + beta * sum_t mask_t (log pi_t - log pi_ref_t) - r.
    With `length_norm` the sum over t becomes a mean over the response's tokens (sum / length): the
    log-ratio term then no longer grows with the answer's length (a documented deviation from eq. 7,
    off by default).
    """
    v0 = beta * torch.logsumexp(first_logits.float(), dim=-1)  # [B]
    ratio = ((logprobs - ref_logprobs) * mask).sum(-1)  # [B]
    if length_norm:
        ratio = ratio / mask.sum(-1).clamp_min(1.0)
    return v0 + beta * ratio - reward


def tbrm_loss(first_logits: torch.Tensor, logprobs: torch.Tensor, ref_logprobs: torch.Tensor, mask: torch.Tensor,
              reward: torch.Tensor, beta: float = 0.1, length_norm: bool = False) -> torch.Tensor:
    """Mean over the batch of the squared TBRM residual (`tbrm_residual`). Returns a scalar.

    At the optimum of a one-step bandit (one response token a), z_a = log pi_ref(a) + r(a)/beta for every
    a, the residual is 0 for every action, and pi = softmax(z) is the KL-regularised optimum
    pi_ref * exp(r / beta) / Z.

    >>> ref = torch.log_softmax(torch.randn(1, 5), -1); r = torch.rand(5); z = ref + r / 0.5
    >>> lp = torch.log_softmax(z, -1)[:, [2]]
    >>> float(tbrm_loss(z, lp, ref[:, [2]], torch.ones(1, 1), r[[2]], beta=0.5)) < 1e-10
    True
    """
    res = tbrm_residual(first_logits, logprobs, ref_logprobs, mask, reward, beta, length_norm)
    return (res ** 2).mean()


def sequence_kl(logprobs: torch.Tensor, ref_logprobs: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """The sampled sequence KL estimate sum_t mask (log pi - log pi_ref). [B, T] -> [B]."""
    return ((logprobs - ref_logprobs) * mask).sum(-1)


def kl_pg_loss(logprobs: torch.Tensor, ref_logprobs: torch.Tensor, mask: torch.Tensor, reward: torch.Tensor,
               kl_coef: float = 0.05, baseline: torch.Tensor | float | None = None) -> tuple[torch.Tensor, dict[str, Any]]:
    """KL-regularised REINFORCE (critic-free CORY update). logprobs/ref_logprobs/mask [B, T], reward [B].

    shaped = r - kl_coef * KL_seq (detached); advantage = shaped - baseline (default: the batch mean when
    B > 1, else 0); loss = -mean_b(advantage_b * sum_t mask log pi_t). Returns (loss, info).
    """
    kl = sequence_kl(logprobs, ref_logprobs, mask).detach()  # [B]
    shaped = reward - kl_coef * kl  # [B]
    if baseline is None:
        baseline = shaped.mean() if shaped.shape[0] > 1 else torch.zeros(())
    adv = shaped - baseline  # [B]
    loss = -(adv * (logprobs * mask).sum(-1)).mean()
    return loss, {"kl": float(kl.mean()), "shaped_reward": float(shaped.mean()), "advantage_abs": float(adv.abs().mean())}


# -- discrete soft actor-critic (SAC-GLAM) -----------------------------------------------------------
# Christodoulou 2019, "Soft Actor-Critic for Discrete Action Settings" (eqs. 10-12), as SAC-GLAM (Gaven et
# al. 2024, sec. 3) uses it over the LLM's textual actions. Shapes: B transitions, A candidate actions.

def sac_critic_target(returns: torch.Tensor, discounts: torch.Tensor, dones: torch.Tensor, next_probs: torch.Tensor,
                      next_logprobs: torch.Tensor, next_q_target: torch.Tensor, alpha: float | torch.Tensor) -> torch.Tensor:
    """n-step soft target. returns/discounts/dones [B], next_* [B, A] -> [B] (no gradient).

    y = sum_{k<n} gamma^k r_{t+k} + gamma^n (1 - done) * sum_a pi(a|s') [Q_targ(s', a) - alpha log pi(a|s')],
    `returns` = the n-step discounted reward sum, `discounts` = gamma^n (n shortened at an episode's end),
    `done` = the episode terminated within those n steps (a time-limit cut is not a termination).
    """
    with torch.no_grad():
        soft_v = (next_probs * (next_q_target - alpha * next_logprobs)).sum(-1)  # [B]
        return returns + discounts * (1.0 - dones.float()) * soft_v


def sac_critic_loss(q_taken: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Mean squared TD error, summed over the critics. q_taken [C, B] (or [B]), target [B] -> scalar."""
    return ((q_taken - target.detach()) ** 2).mean(-1).sum()


def sac_actor_loss(probs: torch.Tensor, logprobs: torch.Tensor, q: torch.Tensor, alpha: float | torch.Tensor) -> torch.Tensor:
    """mean_s sum_a pi(a|s) [alpha log pi(a|s) - Q(s, a)]. probs/logprobs [B, A], q [B, A] (detached) -> scalar.

    The expectation over actions is exact (discrete SAC): no reparameterisation, no sampled action."""
    return (probs * (alpha * logprobs - q.detach())).sum(-1).mean()


def sac_alpha_loss(log_alpha: torch.Tensor, probs: torch.Tensor, logprobs: torch.Tensor,
                   target_entropy: float) -> torch.Tensor:
    """Temperature loss: log_alpha * (H(pi(.|s)) - H_target), averaged over states; probs/logprobs [B, A].

    Its gradient lowers alpha when the policy's entropy is above the target and raises it when below."""
    entropy = -(probs * logprobs).sum(-1).detach()  # [B]
    return (log_alpha * (entropy - target_entropy)).mean()


@torch.no_grad()
def polyak_update(target: torch.nn.Module, source: torch.nn.Module, tau: float) -> None:
    """target <- (1 - tau) * target + tau * source, parameter by parameter (buffers copied)."""
    for t, s in zip(target.parameters(), source.parameters()):
        t.mul_(1.0 - tau).add_(s.detach(), alpha=tau)
    for t, s in zip(target.buffers(), source.buffers()):
        t.copy_(s)
