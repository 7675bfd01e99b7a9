"""The policy protocol: what a collector needs from any algorithm's acting side.

`act(obs, last_actions, avail, hidden, explore, generator) -> Act`: actions for all E envs x N agents in one
call, the next recurrent state, and `stored`: whatever the algorithm must keep per step for its update
(log-probabilities and values for policy gradients; nothing for value decomposition, whose learner
recomputes Q values from the replayed episodes). Collectors (replay: `collector.Collector`; on-policy:
`onpolicy.RolloutCollector`) only ever talk to this protocol.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

import torch

from tfcaf.trainer.agent import RNNAgent, build_inputs


@dataclass
class Act:
    """actions [E, N] int64; hidden [E, N, H]; stored: name -> [E, N, ...] tensors the algorithm keeps."""

    actions: torch.Tensor
    hidden: torch.Tensor
    stored: dict[str, torch.Tensor] = field(default_factory=dict)


class Policy(Protocol):
    def initial_hidden(self, n_envs: int, device: torch.device | str) -> torch.Tensor:
        """Zero recurrent state [E, N, H] (H may be 0 for feed-forward policies)."""

    def act(self, obs: torch.Tensor, last_actions: torch.Tensor, avail: torch.Tensor, hidden: torch.Tensor,
            explore: float, generator: torch.Generator | None = None) -> Act:
        """obs [E, N, O], last_actions [E, N] (-1 = none), avail [E, N, A] bool, hidden [E, N, H].
        `explore`: epsilon for epsilon-greedy policies; > 0 samples / 0 acts greedily for stochastic ones."""


def select_actions(q: torch.Tensor, avail: torch.Tensor, epsilon: float,
                   generator: torch.Generator | None = None) -> torch.Tensor:
    """epsilon-greedy over available actions: q [E, N, A], avail [E, N, A] bool -> actions [E, N] int64."""
    greedy = q.masked_fill(~avail, float("-inf")).argmax(-1)  # [E, N]
    if epsilon <= 0.0:
        return greedy
    e, n, a = avail.shape
    explore = torch.rand(e, n, generator=generator, device=q.device) < epsilon  # [E, N]
    random = torch.multinomial(avail.reshape(e * n, a).to(torch.float32), 1, generator=generator).view(e, n)
    return torch.where(explore, random, greedy)


class EpsilonGreedyQ:
    """The value-decomposition policy: the shared RNNAgent's Q values, epsilon-greedy over available actions."""

    def __init__(self, agent: RNNAgent, n_agents: int, n_actions: int, agent_id: bool = True,
                 last_action: bool = True) -> None:
        self.agent, self.n_agents, self.n_actions = agent, n_agents, n_actions
        self.agent_id, self.last_action = agent_id, last_action

    def initial_hidden(self, n_envs: int, device: torch.device | str) -> torch.Tensor:
        return torch.zeros(n_envs, self.n_agents, self.agent.hidden, device=device)

    @torch.no_grad()
    def act(self, obs: torch.Tensor, last_actions: torch.Tensor, avail: torch.Tensor, hidden: torch.Tensor,
            explore: float, generator: torch.Generator | None = None) -> Act:
        e, n = obs.shape[:2]
        inputs = build_inputs(obs, last_actions, self.n_actions, self.agent_id, self.last_action)  # [E, N, D]
        q, h = self.agent.step(inputs.reshape(e * n, -1), hidden.reshape(e * n, -1))
        actions = select_actions(q.view(e, n, -1), avail, explore, generator)  # [E, N]
        return Act(actions, h.view(e, n, -1))
