"""The TD loss as pure functions of tensors (pymarl's QLearner, written out).

Shapes: B episodes, T transitions (the buffer keeps T+1 steps of observations), N agents, A actions.
Padding: `mask [B, T]` is 1 for real transitions and 0 after an episode's end. `terminated [B, T]` is 1
only where the task itself ended the episode: no bootstrap there. An episode cut by the time limit
(truncated) keeps bootstrapping from its final state, whose values arrive as `next_q_tot[:, t]`.
"""

from __future__ import annotations

import torch


def chosen_action_q(q: torch.Tensor, actions: torch.Tensor) -> torch.Tensor:
    """q [B, T, N, A], actions [B, T, N] int64 -> Q_i(tau, u_i) [B, T, N]."""
    return q.gather(-1, actions.unsqueeze(-1)).squeeze(-1)


def next_action_values(q_online_next: torch.Tensor, q_target_next: torch.Tensor, avail_next: torch.Tensor,
                       double_q: bool = True) -> torch.Tensor:
    """Per-agent bootstrap values at t+1 [B, T, N], unavailable actions excluded.

    Double Q (van Hasselt 2016): the online net picks argmax over available actions, the target net
    values it. Otherwise the target net's max over available actions.
    q_online_next, q_target_next [B, T, N, A]; avail_next [B, T, N, A] bool.
    """
    # An agent with no available action (only in padding) would get -inf: give it action 0 instead.
    any_avail = avail_next.any(-1, keepdim=True)  # [B, T, N, 1]
    avail = avail_next | ~any_avail
    if double_q:
        picks = q_online_next.masked_fill(~avail, float("-inf")).argmax(-1, keepdim=True)  # [B, T, N, 1]
        return q_target_next.gather(-1, picks).squeeze(-1)
    return q_target_next.masked_fill(~avail, float("-inf")).amax(-1)


def one_step_targets(reward: torch.Tensor, terminated: torch.Tensor, next_q_tot: torch.Tensor,
                     gamma: float) -> torch.Tensor:
    """y_t = r_t + gamma * (1 - terminated_t) * Q_tot'(s_{t+1}); all [B, T]."""
    return reward + gamma * (1.0 - terminated.to(reward.dtype)) * next_q_tot


def nstep_targets(reward: torch.Tensor, terminated: torch.Tensor, mask: torch.Tensor, next_q_tot: torch.Tensor,
                  gamma: float, n: int) -> torch.Tensor:
    """n-step targets [B, T]: y_t = sum_{k<m} gamma^k r_{t+k} + gamma^m (1 - term_{t+m-1}) Q_tot'(s_{t+m}),
    with m = min(n, steps left in the episode), so truncated episodes bootstrap from their last state."""
    b, t = reward.shape
    m = mask.to(reward.dtype)
    pad = lambda x: torch.cat([x, torch.zeros(b, n, dtype=x.dtype, device=x.device)], dim=1)  # noqa: E731
    r, valid = pad(reward * m), pad(m)  # [B, T+n]
    acc = torch.zeros_like(reward)
    steps = torch.zeros_like(reward)
    for k in range(n):
        v = valid[:, k:k + t]  # [B, T]
        acc = acc + (gamma ** k) * r[:, k:k + t] * v
        steps = steps + v
    last = (torch.arange(t, device=reward.device).unsqueeze(0) + steps.long() - 1).clamp(0, t - 1)  # [B, T]
    boot = next_q_tot.gather(1, last) * (1.0 - terminated.to(reward.dtype).gather(1, last))
    return acc + gamma ** steps * boot


def lambda_targets(reward: torch.Tensor, terminated: torch.Tensor, mask: torch.Tensor, next_q_tot: torch.Tensor,
                   gamma: float, td_lambda: float) -> torch.Tensor:
    """TD(lambda) targets [B, T] by the backward recursion
    G_t = r_t + gamma (1 - term_t) [(1 - lambda m_{t+1}) Q_tot'(s_{t+1}) + lambda m_{t+1} G_{t+1}],
    where m_{t+1} says whether step t+1 belongs to the episode (else the last step bootstraps fully)."""
    b, t = reward.shape
    m = mask.to(reward.dtype)
    cont = 1.0 - terminated.to(reward.dtype)
    out = torch.zeros_like(reward)
    g_next = torch.zeros(b, dtype=reward.dtype, device=reward.device)
    m_next = torch.zeros(b, dtype=reward.dtype, device=reward.device)
    for i in range(t - 1, -1, -1):
        mix = (1.0 - td_lambda * m_next) * next_q_tot[:, i] + td_lambda * m_next * g_next
        g = reward[:, i] + gamma * cont[:, i] * mix
        out[:, i] = g
        g_next, m_next = g, m[:, i]
    return out * m


def targets(reward: torch.Tensor, terminated: torch.Tensor, mask: torch.Tensor, next_q_tot: torch.Tensor,
            gamma: float, td_lambda: float = 0.0, n_step: int = 1) -> torch.Tensor:
    """Dispatch: TD(lambda) when td_lambda > 0, else n-step (n = 1 is the one-step target)."""
    if td_lambda > 0:
        return lambda_targets(reward, terminated, mask, next_q_tot, gamma, td_lambda)
    if n_step > 1:
        return nstep_targets(reward, terminated, mask, next_q_tot, gamma, n_step)
    return one_step_targets(reward, terminated, next_q_tot, gamma)


def masked_td_loss(q_tot: torch.Tensor, target: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean squared TD error over real transitions only: q_tot, target, mask [B, T] -> (loss [], td [B, T]).
    The target is detached (semi-gradient)."""
    m = mask.to(q_tot.dtype)
    td = (q_tot - target.detach()) * m
    return (td ** 2).sum() / m.sum().clamp_min(1.0), td
