"""Conformance of a task: its environment behaves as its card says (one implementation, used by
tests/tasks/test_conformance.py over every registered task and by `tfcaf tasks --check NAME` on any
task, a plugin's included).

Steps a few hundred batched steps with random available actions and checks shapes and dtypes, that every
named state slice and every feature stays inside its declared range, the alive flag, and the reward /
done / win / episode-return semantics. A failed check raises `ConformanceError` naming the task and what
broke.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from tfcaf.tasks.card import TaskCard
from tfcaf.tasks.env import EnvStep, random_actions
from tfcaf.tasks.features import evaluate

TOL = 1e-5


class ConformanceError(AssertionError):
    """A task's environment disagrees with its card."""


@dataclass(frozen=True)
class ConformanceResult:
    task: str
    n_envs: int
    steps: int
    episodes: int


def _need(cond: object, message: str) -> None:
    if not bool(cond):
        raise ConformanceError(message)


def default_plan(card: TaskCard, quick_smax: bool = True) -> tuple[int, int]:
    """(E, steps) per task: enough steps for several episode ends."""
    if card.family == "smax":
        return (16, 220) if quick_smax else (4, 40)
    if card.family in ("lbf", "mpe"):
        return 4, 2 * card.episode_limit + 10
    if card.family == "vmas":
        return 32, 2 * card.episode_limit + 10
    return 8, max(20, 2 * card.episode_limit + 10)


def check_in_ranges(card: TaskCard, state: torch.Tensor, what: str) -> None:
    """Every named slice of `state` [E, S] inside its declared [low, high]; features too."""
    _need(state.shape[1] == card.state_dim and torch.isfinite(state).all(), f"{card.name} {what}: shape or non-finite values")
    for s in card.state_slices:
        cols = state[:, s.start:s.stop]
        lo, hi = float(cols.min()), float(cols.max())
        _need(lo >= s.low - TOL and hi <= s.high + TOL,
              f"{card.name} {what}: slice {s.name} in [{lo}, {hi}], card says [{s.low}, {s.high}]")
    for name, value in evaluate(card, state).items():
        f = card.feature(name)
        _need(value.shape == (state.shape[0], card.n_agents), f"{card.name} {what}: feature {name} shape {tuple(value.shape)}")
        _need(float(value.min()) >= f.low - TOL and float(value.max()) <= f.high + TOL, f"{card.name} {what}: feature {name} out of range")


def check_step(card: TaskCard, out: EnvStep, e: int) -> None:
    """One EnvStep of E environments against the card: shapes, dtypes, flags, reward range, state ranges."""
    n, a, c = card.n_agents, card.n_actions, card.name
    _need(out.obs.shape == (e, n, card.obs_dim) and out.obs.dtype == torch.float32, f"{c}: obs must be float32 [E, N, O]")
    _need(out.state.shape == (e, card.state_dim) and out.state.dtype == torch.float32, f"{c}: state must be float32 [E, S]")
    _need(out.avail_actions.shape == (e, n, a) and out.avail_actions.dtype == torch.bool, f"{c}: avail_actions must be bool [E, N, A]")
    _need(out.avail_actions.any(-1).all(), f"{c}: every agent needs at least one available action")
    for label, t, dt in (("reward", out.reward, torch.float32), ("episode_return", out.episode_return, torch.float32),
                         ("episode_length", out.episode_length, torch.int64)):
        _need(t.shape == (e,) and t.dtype == dt, f"{c}: {label} must be {dt} [E]")
    for label, t in (("terminated", out.terminated), ("truncated", out.truncated), ("won", out.won)):
        _need(t.shape == (e,) and t.dtype == torch.bool, f"{c}: {label} must be bool [E]")
    _need(out.final_obs.shape == out.obs.shape and out.final_state.shape == out.state.shape, f"{c}: final_obs/final_state shapes")
    _need(out.final_avail_actions.shape == out.avail_actions.shape, f"{c}: final_avail_actions shape")
    _need(not (out.terminated & out.truncated).any(), f"{c}: an episode is both terminated and truncated")
    _need(not (out.won & ~out.terminated).any(), f"{c}: a won episode is terminated")
    lo, hi = card.reward_range
    _need(float(out.reward.min()) >= lo - TOL and float(out.reward.max()) <= hi + TOL,
          f"{c}: reward in [{float(out.reward.min())}, {float(out.reward.max())}], card says [{lo}, {hi}]")
    check_in_ranges(card, out.state, "state")
    check_in_ranges(card, out.final_state, "final_state")


def check_task(name: str, n_envs: int | None = None, steps: int | None = None, seed: int = 0,
               quick_smax: bool = True) -> ConformanceResult:
    """Build `name`'s environment and run every check; raises ConformanceError (or MissingDependencyError).

    >>> check_task("matrix_climbing").episodes
    160
    """
    from tfcaf.tasks.registry import get_task, make_env

    torch.manual_seed(seed)
    card = get_task(name).card
    e0, s0 = default_plan(card, quick_smax)
    e, steps = n_envs or e0, steps or s0
    env = make_env(name, n_envs=e, seed=seed)
    gen = torch.Generator().manual_seed(seed)
    episodes = 0
    try:
        _need(env.card == card and env.n_envs == e, f"{name}: env.card / env.n_envs differ from the card and E")
        out = env.reset(seed=seed)
        check_step(card, out, e)
        _need(not out.done.any() and (out.reward == 0).all(), f"{name}: reset returns done or a non-zero reward")
        running = torch.zeros(e)
        length = torch.zeros(e, dtype=torch.int64)
        for _ in range(steps):
            actions = random_actions(out.avail_actions, gen)
            out = env.step(actions)
            check_step(card, out, e)
            running += out.reward
            length += 1
            done = out.done
            _need((length <= card.episode_limit).all(), f"{name}: an episode ran past episode_limit {card.episode_limit}")
            if done.any():
                episodes += int(done.sum())
                _need(torch.allclose(out.episode_return[done], running[done], atol=1e-4), f"{name}: episode_return is not the sum of rewards")
                _need(torch.equal(out.episode_length[done], length[done]), f"{name}: episode_length is wrong")
                _need((out.episode_length[out.truncated] == card.episode_limit).all(), f"{name}: truncation must happen at the limit")
                running[done] = 0
                length[done] = 0
            keep = ~done
            _need(torch.equal(out.final_state[keep], out.state[keep]) and torch.equal(out.final_obs[keep], out.obs[keep]),
                  f"{name}: final_state/final_obs differ from state/obs where no episode ended")
            _need(torch.equal(out.final_avail_actions[keep], out.avail_actions[keep]), f"{name}: final_avail_actions differ")
            if card.alive is not None:  # dead agents (per the card's alive flag) may only stop / do nothing
                dead = out.final_state[:, list(card.alive.columns)] <= card.alive.threshold  # [E, N]
                if dead.any():
                    _need((out.final_avail_actions[dead].sum(-1) == 1).all(), f"{name}: a dead agent has exactly one action")
        if steps >= 2 * card.episode_limit:
            _need(episodes >= e, f"{name}: expected every env to finish an episode in {steps} steps")
    finally:
        env.close()
    return ConformanceResult(name, e, steps, episodes)
