"""A small batched env with variable episode lengths, truncation and action masks, for trainer tests."""

from __future__ import annotations

import torch

from tfcaf.tasks.card import StateSlice, TaskCard
from tfcaf.tasks.env import BatchedEnv, EnvStep

LIMIT = 6
CARD = TaskCard(name="toy_countdown", family="toy", backend="test", n_agents=2, state_dim=2, obs_dim=2, n_actions=3,
                episode_limit=LIMIT, action_meanings=("a", "b", "c"), reward="1 per step", description="test env",
                state_slices=(StateSlice("t", 0, 1, "time", 0, LIMIT), StateSlice("len", 1, 2, "length", 0, LIMIT)))


class CountdownEnv(BatchedEnv):
    """Env e's episode k lasts 1 + (e + k) % (LIMIT + 2) steps, capped at LIMIT (then truncated).

    obs[e, i] = [t, i]; state = [t, length]; action 2 is unavailable at odd t; reward = 1 + action of agent 0.
    """

    def __init__(self, n_envs: int = 3) -> None:
        self.card, self.n_envs, self.device = CARD, n_envs, torch.device("cpu")
        self.t = torch.zeros(n_envs, dtype=torch.int64)
        self.k = torch.zeros(n_envs, dtype=torch.int64)
        self.ret = torch.zeros(n_envs)

    def _length(self) -> torch.Tensor:
        return 1 + (torch.arange(self.n_envs) + self.k) % (LIMIT + 2)

    def _view(self):
        t = self.t.to(torch.float32)
        obs = torch.stack([t.unsqueeze(1).expand(-1, 2), torch.arange(2.0).expand(self.n_envs, 2)], dim=-1)  # [E, 2, 2]
        state = torch.stack([t, self._length().to(torch.float32)], dim=-1)
        avail = torch.ones(self.n_envs, 2, 3, dtype=torch.bool)
        avail[:, :, 2] = (self.t % 2 == 0).unsqueeze(1)
        return obs, state, avail

    def reset(self, seed=None) -> EnvStep:
        from tfcaf.tasks.env import first_step

        self.t.zero_(), self.k.zero_(), self.ret.zero_()
        return first_step(*self._view())

    def step(self, actions: torch.Tensor) -> EnvStep:
        _, _, avail = self._view()
        assert bool(avail.gather(-1, actions.unsqueeze(-1)).all()), "unavailable action taken"
        reward = 1.0 + actions[:, 0].to(torch.float32)
        self.ret += reward
        self.t += 1
        length = self._length()
        natural = self.t >= length
        truncated = (self.t >= LIMIT) & ~natural
        terminated = natural & (self.t < LIMIT) | natural & (length < LIMIT)
        truncated = truncated | (natural & (length >= LIMIT))
        terminated = terminated & ~truncated
        done = terminated | truncated
        f_obs, f_state, f_avail = self._view()
        ep_ret, ep_len = self.ret.clone(), self.t.clone()
        self.t = torch.where(done, torch.zeros_like(self.t), self.t)
        self.k = self.k + done.long()
        self.ret = torch.where(done, torch.zeros_like(self.ret), self.ret)
        obs, state, avail = self._view()
        return EnvStep(obs=obs, state=state, avail_actions=avail, reward=reward, terminated=terminated,
                       truncated=truncated, won=torch.zeros_like(done), episode_return=ep_ret, episode_length=ep_len,
                       final_obs=f_obs, final_state=f_state, final_avail_actions=f_avail)
