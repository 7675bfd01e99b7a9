"""One batched environment interface for every task: E environments stepped together, torch out.

Shapes (E environments, N agents, O observation features, S state features, A actions):

    obs            [E, N, O] float32   what the agents act on next (after auto-reset where done)
    state          [E, S]    float32   global state for the credit function, same time step as obs
    avail_actions  [E, N, A] bool      actions the agents may take next
    reward         [E]       float32   team reward of the transition just taken (0 right after reset)
    terminated     [E]       bool      the episode ended by the task itself (no bootstrap)
    truncated      [E]       bool      the episode hit the episode limit (bootstrap allowed)
    won            [E]       bool      battle won (SMAX), else False; meaningful where done
    episode_return [E]       float32   return of the episode that just ended; meaningful where done
    episode_length [E]       int64     its length; meaningful where done
    final_*                            obs / state / avail_actions right after the transition and
                                       before the auto-reset (equal to obs / state / avail where not done)

Environments auto-reset: after a step in which env e is done, `obs[e]` already belongs to the next
episode, while `final_obs[e]` holds the terminal observation (needed to bootstrap truncated episodes).
"""

from __future__ import annotations

import abc
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import torch

    from tfcaf.tasks.card import TaskCard


@dataclass
class EnvStep:
    """What `reset` and `step` return; see the module docstring for shapes."""

    obs: "torch.Tensor"
    state: "torch.Tensor"
    avail_actions: "torch.Tensor"
    reward: "torch.Tensor"
    terminated: "torch.Tensor"
    truncated: "torch.Tensor"
    won: "torch.Tensor"
    episode_return: "torch.Tensor"
    episode_length: "torch.Tensor"
    final_obs: "torch.Tensor"
    final_state: "torch.Tensor"
    final_avail_actions: "torch.Tensor"

    @property
    def done(self) -> "torch.Tensor":
        """[E] bool: the episode ended (terminated or truncated)."""
        return self.terminated | self.truncated


class BatchedEnv(abc.ABC):
    """E copies of one task, stepped together; subclasses are the env adapters in this package."""

    card: "TaskCard"
    n_envs: int
    device: "torch.device"

    @abc.abstractmethod
    def reset(self, seed: int | None = None) -> EnvStep:
        """Start new episodes in all E envs (seeded when `seed` is given)."""

    @abc.abstractmethod
    def step(self, actions: "torch.Tensor") -> EnvStep:
        """Take actions [E, N] (int64, each available); done envs auto-reset."""

    def close(self) -> None:
        """Release resources (windows, processes); idempotent."""

    def __enter__(self) -> "BatchedEnv":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def first_step(obs: "torch.Tensor", state: "torch.Tensor", avail_actions: "torch.Tensor") -> EnvStep:
    """The EnvStep returned by `reset`: zero reward, nothing done."""
    import torch

    e = obs.shape[0]
    false = torch.zeros(e, dtype=torch.bool, device=obs.device)
    return EnvStep(obs=obs, state=state, avail_actions=avail_actions,
                   reward=torch.zeros(e, dtype=torch.float32, device=obs.device),
                   terminated=false, truncated=false.clone(), won=false.clone(),
                   episode_return=torch.zeros(e, dtype=torch.float32, device=obs.device),
                   episode_length=torch.zeros(e, dtype=torch.int64, device=obs.device),
                   final_obs=obs, final_state=state, final_avail_actions=avail_actions)


def random_actions(avail_actions: "torch.Tensor", generator: "torch.Generator | None" = None) -> "torch.Tensor":
    """Uniformly random available actions: avail_actions [E, N, A] bool -> [E, N] int64."""
    import torch

    weights = avail_actions.to(torch.float32)  # [E, N, A]
    flat = weights.reshape(-1, weights.shape[-1])  # [E*N, A]
    picks = torch.multinomial(flat, 1, generator=generator)  # [E*N, 1]
    return picks.reshape(avail_actions.shape[:-1])
