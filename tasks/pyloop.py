"""A BatchedEnv over E single Python environments stepped in a loop (LBF, MPE).

Simple and correct rather than fast: these simulators are Python anyway (3-5k env-steps/s for one
LBF env here). Subclasses say how to reset and step copy i; this class keeps the episode returns and
lengths, auto-resets finished copies (keeping their terminal obs/state in final_*) and converts the
numpy batch to torch once per step.
"""

from __future__ import annotations

import abc
from typing import TYPE_CHECKING, Any

from tfcaf.errors import UsageError
from tfcaf.tasks.card import TaskCard
from tfcaf.tasks.env import BatchedEnv, EnvStep

if TYPE_CHECKING:
    import numpy as np
    import torch

OneStep = tuple["np.ndarray", "np.ndarray", "np.ndarray"]
"""obs [N, O], state [S], avail [N, A] of one environment copy."""


class LoopEnv(BatchedEnv):
    """E copies of a single-environment simulator behind the batched interface."""

    def __init__(self, card: TaskCard, n_envs: int, device: str, seed: int) -> None:
        import numpy as np
        import torch

        if n_envs < 1:
            raise UsageError(f"n_envs must be >= 1, got {n_envs}")
        self.card, self.n_envs, self.device, self.seed = card, n_envs, torch.device(device), seed
        n, o, s, a = card.n_agents, card.obs_dim, card.state_dim, card.n_actions
        self._obs = np.zeros((n_envs, n, o), np.float32)
        self._state = np.zeros((n_envs, s), np.float32)
        self._avail = np.zeros((n_envs, n, a), bool)
        self._ret = np.zeros(n_envs, np.float32)
        self._len = np.zeros(n_envs, np.int64)
        self._started = False

    @abc.abstractmethod
    def reset_one(self, i: int, seed: int | None) -> OneStep:
        """Start a new episode in copy i (seeded when `seed` is given)."""

    @abc.abstractmethod
    def step_one(self, i: int, actions: "np.ndarray") -> tuple["np.ndarray", "np.ndarray", "np.ndarray", float, bool, bool]:
        """Step copy i with actions [N]: (obs, state, avail, team reward, terminated, truncated)."""

    def _torch(self, x: "np.ndarray") -> "torch.Tensor":
        import torch

        return torch.from_numpy(x).to(self.device)

    def reset(self, seed: int | None = None) -> EnvStep:
        from tfcaf.tasks.env import first_step

        seed = self.seed if seed is None else seed
        for i in range(self.n_envs):
            self._obs[i], self._state[i], self._avail[i] = self.reset_one(i, seed + i)
        self._ret[:] = 0
        self._len[:] = 0
        self._started = True
        return first_step(self._torch(self._obs.copy()), self._torch(self._state.copy()), self._torch(self._avail.copy()))

    def step(self, actions: "torch.Tensor") -> EnvStep:
        import numpy as np

        if not self._started:
            raise UsageError("call reset() before step()")
        n, a = self.card.n_agents, self.card.n_actions
        acts = actions.detach().to("cpu").numpy().astype(np.int64)
        if acts.shape != (self.n_envs, n):
            raise ValueError(f"actions must be [E, N] = [{self.n_envs}, {n}], got {list(acts.shape)}")
        if ((acts < 0) | (acts >= a)).any():
            raise ValueError(f"actions must be in [0, {a})")
        e = self.n_envs
        reward = np.zeros(e, np.float32)
        term, trunc, won = np.zeros(e, bool), np.zeros(e, bool), np.zeros(e, bool)
        ep_ret, ep_len = np.zeros(e, np.float32), np.zeros(e, np.int64)
        f_obs, f_state, f_avail = self._obs.copy(), self._state.copy(), self._avail.copy()
        for i in range(e):
            obs, state, avail, r, te, tr = self.step_one(i, acts[i])
            f_obs[i], f_state[i], f_avail[i] = obs, state, avail
            reward[i], term[i], trunc[i] = r, te, tr and not te
            self._ret[i] += r
            self._len[i] += 1
            ep_ret[i], ep_len[i] = self._ret[i], self._len[i]
            if te or tr:
                self._obs[i], self._state[i], self._avail[i] = self.reset_one(i, None)
                self._ret[i], self._len[i] = 0, 0
            else:
                self._obs[i], self._state[i], self._avail[i] = obs, state, avail
        t = self._torch
        return EnvStep(obs=t(self._obs.copy()), state=t(self._state.copy()), avail_actions=t(self._avail.copy()),
                       reward=t(reward), terminated=t(term), truncated=t(trunc), won=t(won), episode_return=t(ep_ret),
                       episode_length=t(ep_len), final_obs=t(f_obs), final_state=t(f_state), final_avail_actions=t(f_avail))


def check_options(family: str, options: dict[str, Any]) -> None:
    if options:
        raise UsageError(f"{family} tasks take no options, got {sorted(options)}")
