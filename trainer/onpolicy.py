"""The on-policy path: fixed-length rollouts from E auto-resetting envs, beside the replay path.

`RolloutCollector.run()` steps all E envs `rollout_length` times with a stochastic `policy.Policy`
(one batched call per step), asks the critic for values as it goes, and returns a `Rollout` allocated
from `storage.ROLLOUT_SCHEME` plus the policy's stored fields. Env state and recurrent state carry over
from one rollout to the next (episodes straddle iterations). Where an episode is truncated by the time
limit, the critic's value of `final_state` is stored in `final_value`, so GAE bootstraps it correctly.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol

import torch

from tfcaf.tasks.env import BatchedEnv
from tfcaf.trainer.policy import Policy
from tfcaf.trainer.storage import ROLLOUT_SCHEME, Field, allocate, extend


class ValueFunction(Protocol):
    state_size: int
    heads: int

    def initial_hidden(self, n_envs: int, device: torch.device | str) -> torch.Tensor:
        """[E, K, H] (K = 1 for an EP critic, N for FP)."""

    def step(self, state: torch.Tensor, obs: torch.Tensor, h: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """state [E, S], obs [E, N, O], h [E, K, H] -> (raw values [E, N], h)."""


@dataclass
class Rollout:
    """One rollout: `data` name -> tensor (time-major; see storage.ROLLOUT_SCHEME and the policy's fields),
    the recurrent states at its first step, and the episodes that finished during it."""

    data: dict[str, torch.Tensor]
    actor_h0: torch.Tensor  # [E, N, H]
    critic_h0: torch.Tensor  # [E, K, H]
    episode_returns: list[float] = field(default_factory=list)
    episode_wins: list[float] = field(default_factory=list)

    @property
    def starts(self) -> torch.Tensor:
        """[T, E] bool: step t begins a new episode (the previous step was done)."""
        done = self.data["done"]
        return torch.cat([torch.zeros_like(done[:1]), done[:-1]])


POLICY_FIELDS = (Field("log_prob", ("T", "E", "N"), torch.float32, "log pi_i(a_i | o_i) of the behaviour policy"),
                 Field("value", ("T1", "E", "N"), torch.float32, "raw critic output (T1: bootstraps the rollout end)"))


class RolloutCollector:
    """Steps E envs for fixed-length rollouts with a stochastic policy and a critic."""

    def __init__(self, env: BatchedEnv, policy: Policy, critic: ValueFunction, rollout_length: int, *, seed: int = 0,
                 generator: torch.Generator | None = None) -> None:
        card = env.card
        self.env, self.policy, self.critic, self.length = env, policy, critic, rollout_length
        self.generator = generator
        self.device = env.device
        self.n_envs, self.n_agents = env.n_envs, card.n_agents
        self.scheme = extend(ROLLOUT_SCHEME, *POLICY_FIELDS)
        self.dims = {"T": rollout_length, "T1": rollout_length + 1, "E": env.n_envs, "N": card.n_agents,
                     "O": card.obs_dim, "S": card.state_dim, "A": card.n_actions}
        self.env_steps = 0
        first = env.reset(seed=seed)
        self.obs, self.state, self.avail = first.obs, first.state, first.avail_actions
        self.last_actions = torch.full((self.n_envs, self.n_agents), -1, dtype=torch.int64, device=self.device)
        self.actor_h = policy.initial_hidden(self.n_envs, self.device)
        self.critic_h = critic.initial_hidden(self.n_envs, self.device)

    @torch.no_grad()
    def run(self) -> Rollout:
        d = allocate(self.scheme, self.dims, self.device)
        out_stats: dict[str, list[float]] = {"return": [], "won": []}
        actor_h0, critic_h0 = self.actor_h.clone(), self.critic_h.clone()
        for t in range(self.length):
            d["obs"][t], d["state"][t], d["avail"][t], d["last_actions"][t] = self.obs, self.state, self.avail, self.last_actions
            value, ch = self.critic.step(self.state, self.obs, self.critic_h)  # [E, N]
            act = self.policy.act(self.obs, self.last_actions, self.avail, self.actor_h, 1.0, self.generator)
            out = self.env.step(act.actions)
            self.env_steps += self.n_envs
            d["value"][t], d["actions"][t], d["log_prob"][t] = value, act.actions, act.stored["log_prob"]
            d["reward"][t], d["terminated"][t], d["done"][t] = out.reward, out.terminated, out.done
            done = out.done  # [E]
            if bool(out.truncated.any()):
                # V(final_state) with the recurrent state that led there; only truncated rows are used.
                fv, _ = self.critic.step(out.final_state, out.final_obs, ch)
                d["final_value"][t] = torch.where(out.truncated.unsqueeze(-1), fv, torch.zeros_like(fv))
            if bool(done.any()):
                idx = done.nonzero().squeeze(-1)
                out_stats["return"] += out.episode_return[idx].to(torch.float32).tolist()
                out_stats["won"] += out.won[idx].to(torch.float32).tolist()
            keep = (~done).view(self.n_envs, 1, 1)
            self.actor_h = act.hidden * keep.to(act.hidden.dtype)
            self.critic_h = ch * keep.to(ch.dtype)
            self.last_actions = torch.where(keep.view(-1, 1), act.actions, torch.full_like(act.actions, -1))
            self.obs, self.state, self.avail = out.obs, out.state, out.avail_actions
        t = self.length
        d["obs"][t], d["state"][t], d["avail"][t], d["last_actions"][t] = self.obs, self.state, self.avail, self.last_actions
        d["value"][t], _ = self.critic.step(self.state, self.obs, self.critic_h)
        return Rollout(d, actor_h0, critic_h0, out_stats["return"], out_stats["won"])

    def state_dict(self) -> dict[str, Any]:
        return {"env_steps": self.env_steps}
