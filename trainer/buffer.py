"""Episode replay buffer kept on the training device (pymarl's EpisodeBatch + ReplayBuffer).

Each row is one episode padded to the task's episode limit T. Observations, states and available
actions are stored for T+1 steps (the last is the state after the final transition, needed to
bootstrap a truncated episode); actions, rewards, `terminated` and the padding mask for T transitions.
"""

from __future__ import annotations

from dataclasses import dataclass, fields

import torch

from tfcaf.trainer.storage import EPISODE_SCHEME, allocate


@dataclass
class EpisodeBatch:
    """B episodes. obs [B, T+1, N, O], state [B, T+1, S], avail [B, T+1, N, A] bool, actions [B, T, N] int64,
    reward [B, T], terminated [B, T] bool, mask [B, T] bool (real transition), plus per-episode stats:
    episode_return [B], won [B] bool, length [B] int64."""

    obs: torch.Tensor
    state: torch.Tensor
    avail: torch.Tensor
    actions: torch.Tensor
    reward: torch.Tensor
    terminated: torch.Tensor
    mask: torch.Tensor
    episode_return: torch.Tensor
    won: torch.Tensor
    length: torch.Tensor

    @property
    def size(self) -> int:
        return self.reward.shape[0]

    def select(self, index: torch.Tensor) -> "EpisodeBatch":
        return EpisodeBatch(**{f.name: getattr(self, f.name)[index] for f in fields(self)})

    def truncate(self, steps: int) -> "EpisodeBatch":
        """Keep the first `steps` transitions (and steps+1 observation steps)."""
        out = {}
        for f in fields(self):
            x = getattr(self, f.name)
            if f.name in ("obs", "state", "avail"):
                x = x[:, : steps + 1]
            elif x.dim() >= 2:
                x = x[:, :steps]
            out[f.name] = x
        return EpisodeBatch(**out)

    def to(self, device: torch.device | str) -> "EpisodeBatch":
        return EpisodeBatch(**{f.name: getattr(self, f.name).to(device) for f in fields(self)})


def empty_batch(size: int, steps: int, n_agents: int, obs_dim: int, state_dim: int, n_actions: int,
                device: torch.device | str = "cpu") -> EpisodeBatch:
    """Zeroed storage for `size` episodes of at most `steps` transitions (from `storage.EPISODE_SCHEME`)."""
    dims = {"B": size, "T": steps, "T1": steps + 1, "N": n_agents, "O": obs_dim, "S": state_dim, "A": n_actions}
    return EpisodeBatch(**allocate(EPISODE_SCHEME, dims, device))


class ReplayBuffer:
    """A ring of `capacity` episodes on `device`; uniform sampling without replacement within a batch.

    >>> buf = ReplayBuffer(10, steps=4, n_agents=2, obs_dim=3, state_dim=5, n_actions=6)
    >>> buf.add(empty_batch(3, 4, 2, 3, 5, 6)); len(buf)
    3
    """

    def __init__(self, capacity: int, steps: int, n_agents: int, obs_dim: int, state_dim: int, n_actions: int,
                 device: torch.device | str = "cpu") -> None:
        self.capacity, self.steps, self.device = capacity, steps, torch.device(device)
        self.data = empty_batch(capacity, steps, n_agents, obs_dim, state_dim, n_actions, device)
        self.next = 0
        self.count = 0
        self.episodes_added = 0

    def __len__(self) -> int:
        return self.count

    def add(self, batch: EpisodeBatch) -> None:
        """Insert episodes (overwriting the oldest when full)."""
        k = batch.size
        if k == 0:
            return
        if k > self.capacity:
            batch = batch.select(torch.arange(k - self.capacity, k))
            k = self.capacity
        index = (torch.arange(k) + self.next) % self.capacity
        index = index.to(self.device)
        for f in fields(self.data):
            getattr(self.data, f.name)[index] = getattr(batch, f.name).to(self.device)
        self.next = (self.next + k) % self.capacity
        self.count = min(self.capacity, self.count + k)
        self.episodes_added += k

    def can_sample(self, batch_size: int) -> bool:
        return self.count >= batch_size

    def sample(self, batch_size: int, generator: torch.Generator | None = None) -> EpisodeBatch:
        """`batch_size` distinct episodes, cut to the longest of them (pymarl's max_t_filled)."""
        if not self.can_sample(batch_size):
            raise ValueError(f"buffer holds {self.count} episodes, {batch_size} requested")
        index = torch.randperm(self.count, generator=generator)[:batch_size].to(self.device)
        batch = self.data.select(index)
        longest = int(batch.length.max().item())
        return batch.truncate(max(1, longest))
