"""Batched episode collection over E environments: one agent forward and one env step per time step
for all E x N agents together (no per-env or per-agent Python loops).

Environments auto-reset (tasks/env.py), so the collector streams: each env writes into its own row of
a staging batch; when its episode ends the row is handed out as a finished episode and restarts with
the next episode's first observation. No env idles waiting for the slowest one.
"""

from __future__ import annotations

from dataclasses import fields

import torch

from tfcaf.errors import InfrastructureError
from tfcaf.tasks.env import BatchedEnv
from tfcaf.trainer.agent import RNNAgent
from tfcaf.trainer.buffer import EpisodeBatch, empty_batch
from tfcaf.trainer.policy import EpsilonGreedyQ, Policy, select_actions  # noqa: F401 - select_actions re-exported


def epsilon_at(step: int, start: float, finish: float, anneal_steps: int) -> float:
    """Linear annealing from `start` to `finish` over `anneal_steps` env steps, then constant."""
    if anneal_steps <= 0 or step >= anneal_steps:
        return finish
    frac = min(1.0, max(0.0, step / anneal_steps))
    return start + frac * (finish - start)


class Collector:
    """Runs a policy (any `policy.Policy`; an RNNAgent is wrapped as epsilon-greedy) in E envs and returns
    finished episodes as an EpisodeBatch."""

    def __init__(self, env: BatchedEnv, agent: RNNAgent | Policy, *, agent_id: bool = True, last_action: bool = True,
                 seed: int = 0, generator: torch.Generator | None = None) -> None:
        card = env.card
        self.env = env
        self.policy: Policy = (EpsilonGreedyQ(agent, card.n_agents, card.n_actions, agent_id, last_action)
                               if isinstance(agent, RNNAgent) else agent)
        self.agent_id, self.last_action = agent_id, last_action
        self.n_envs, self.n_agents, self.n_actions = env.n_envs, card.n_agents, card.n_actions
        self.limit = card.episode_limit
        self.device = env.device
        self.generator = generator
        self.stage = empty_batch(self.n_envs, self.limit, card.n_agents, card.obs_dim, card.state_dim, card.n_actions,
                                 self.device)
        self.seed = seed
        self.env_steps = 0
        self.reset(seed)

    def reset(self, seed: int | None = None) -> None:
        """Start fresh episodes in every env."""
        first = self.env.reset(seed=seed)
        for f in fields(self.stage):
            getattr(self.stage, f.name).zero_()
        self.t = torch.zeros(self.n_envs, dtype=torch.int64, device=self.device)  # [E]
        self.hidden = self.policy.initial_hidden(self.n_envs, self.device)  # [E, N, H]
        self.last_actions = torch.full((self.n_envs, self.n_agents), -1, dtype=torch.int64, device=self.device)
        self.obs, self.avail = first.obs, first.avail_actions
        self.stage.obs[:, 0] = first.obs
        self.stage.state[:, 0] = first.state
        self.stage.avail[:, 0] = first.avail_actions

    @torch.no_grad()
    def run(self, min_episodes: int, epsilon: float, first_only: bool = False) -> EpisodeBatch:
        """Step all E envs until `min_episodes` episodes have finished (or, with `first_only`, until every
        env has finished one episode since the last reset, keeping exactly one per env: unbiased tests)."""
        finished: list[EpisodeBatch] = []
        count = 0
        seen = torch.zeros(self.n_envs, dtype=torch.bool, device=self.device)
        ar = torch.arange(self.n_envs, device=self.device)
        while (not bool(seen.all())) if first_only else count < min_episodes:
            act = self.policy.act(self.obs, self.last_actions, self.avail, self.hidden, epsilon, self.generator)
            actions, h = act.actions, act.hidden  # [E, N], [E, N, H]
            out = self.env.step(actions)
            self.env_steps += self.n_envs
            t = self.t
            self.stage.actions[ar, t] = actions
            self.stage.reward[ar, t] = out.reward
            self.stage.terminated[ar, t] = out.terminated
            self.stage.mask[ar, t] = True
            self.stage.obs[ar, t + 1] = out.final_obs
            self.stage.state[ar, t + 1] = out.final_state
            self.stage.avail[ar, t + 1] = out.final_avail_actions
            self.t = t + 1
            done = out.done  # [E]
            if bool(done.any()):
                idx = done.nonzero().squeeze(-1)
                keep = idx[~seen[idx]] if first_only else idx
                if keep.numel():
                    ep = self.stage.select(keep)
                    ep.length = self.t[keep].clone()
                    ep.episode_return = out.episode_return[keep].to(torch.float32)
                    ep.won = out.won[keep].clone()
                    finished.append(ep)
                    count += int(keep.numel())
                seen[idx] = True
                self._restart(idx, out.obs[idx], out.state[idx], out.avail_actions[idx])
            elif int(self.t.max()) >= self.limit:
                raise InfrastructureError(f"task '{self.env.card.name}' ran past its episode limit {self.limit} without "
                                          "ending an episode; its env adapter must truncate at the limit.")
            not_done = (~done).view(self.n_envs, 1)
            self.hidden = h * not_done.unsqueeze(-1).to(h.dtype)  # [E, N, H]
            self.last_actions = torch.where(not_done, actions, torch.full_like(actions, -1))
            self.obs, self.avail = out.obs, out.avail_actions
        return _concat(finished)

    def _restart(self, idx: torch.Tensor, obs: torch.Tensor, state: torch.Tensor, avail: torch.Tensor) -> None:
        for f in fields(self.stage):
            getattr(self.stage, f.name)[idx] = 0
        self.stage.obs[idx, 0] = obs
        self.stage.state[idx, 0] = state
        self.stage.avail[idx, 0] = avail
        self.t[idx] = 0


def _concat(parts: list[EpisodeBatch]) -> EpisodeBatch:
    return EpisodeBatch(**{f.name: torch.cat([getattr(p, f.name) for p in parts]) for f in fields(EpisodeBatch)})
