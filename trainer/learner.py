"""The learner: agent + mixer, their target copies, the optimiser, and one TD update on an EpisodeBatch."""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass

import torch
from torch import nn

from tfcaf.errors import RejectedError
from tfcaf.trainer import loss as L
from tfcaf.trainer.agent import RNNAgent, build_inputs
from tfcaf.trainer.buffer import EpisodeBatch
from tfcaf.trainer.config import TrainConfig


class DivergedError(RejectedError):
    """The loss became NaN or inf; the run stops and keeps its last good checkpoint."""


class RunningMeanStd(nn.Module):
    """Running mean and variance of rewards (EPyMARL's reward standardisation), kept as buffers."""

    def __init__(self) -> None:
        super().__init__()
        self.register_buffer("mean", torch.zeros(()))
        self.register_buffer("var", torch.ones(()))
        self.register_buffer("count", torch.tensor(1e-4))

    def update(self, x: torch.Tensor) -> None:
        n = x.numel()
        if n == 0:
            return
        mean, var = x.mean(), x.var(unbiased=False)
        delta, total = mean - self.mean, self.count + n
        self.mean += delta * n / total
        self.var.copy_((self.var * self.count + var * n + delta ** 2 * self.count * n / total) / total)
        self.count.copy_(total)

    def normalise(self, x: torch.Tensor) -> torch.Tensor:
        return (x - self.mean) / self.var.clamp_min(1e-8).sqrt()


@dataclass
class UpdateStats:
    loss: float
    grad_norm: float
    q_taken_mean: float
    target_mean: float
    td_abs_mean: float


class Learner:
    """Double-Q value decomposition learner (pymarl's QLearner) for any mixer in the registry."""

    def __init__(self, agent: RNNAgent, mixer: nn.Module, cfg: TrainConfig, n_actions: int) -> None:
        self.agent, self.mixer, self.cfg, self.n_actions = agent, mixer, cfg, n_actions
        self.target_agent = copy.deepcopy(agent).requires_grad_(False)
        self.target_mixer = copy.deepcopy(mixer).requires_grad_(False)
        self.params = [p for p in list(agent.parameters()) + list(mixer.parameters()) if p.requires_grad]
        if cfg.optimizer == "adam":
            self.optimiser: torch.optim.Optimizer = torch.optim.Adam(self.params, lr=cfg.lr)
        else:
            self.optimiser = torch.optim.RMSprop(self.params, lr=cfg.lr, alpha=0.99, eps=1e-5)
        self.reward_stats = RunningMeanStd().to(next(agent.parameters()).device)
        self.updates = 0
        self.mix = mixer
        self.target_mix = self.target_mixer
        if cfg.compile_mixer:
            self.mix = torch.compile(mixer, dynamic=True)
            self.target_mix = torch.compile(self.target_mixer, dynamic=True)

    def agent_q(self, agent: RNNAgent, batch: EpisodeBatch) -> torch.Tensor:
        """Q values for every stored step: [B, T+1, N, A]."""
        prev = torch.cat([torch.full_like(batch.actions[:, :1], -1), batch.actions], dim=1)  # [B, T+1, N]
        inputs = build_inputs(batch.obs, prev, self.n_actions, self.cfg.agent_id, self.cfg.last_action)  # [B, T+1, N, D]
        return agent(inputs)

    def update(self, batch: EpisodeBatch) -> UpdateStats:
        """One gradient step on B episodes; raises DivergedError (before stepping) on a NaN/inf loss."""
        cfg = self.cfg
        reward = batch.reward * cfg.reward_scale  # [B, T]
        if cfg.standardise_rewards:
            self.reward_stats.update(reward[batch.mask])
            reward = self.reward_stats.normalise(reward)
        q = self.agent_q(self.agent, batch)  # [B, T+1, N, A]
        chosen = L.chosen_action_q(q[:, :-1], batch.actions)  # [B, T, N]
        with torch.no_grad():
            q_target = self.agent_q(self.target_agent, batch)  # [B, T+1, N, A]
            next_q = L.next_action_values(q.detach()[:, 1:], q_target[:, 1:], batch.avail[:, 1:], cfg.double_q)  # [B, T, N]
            next_q_tot = self.target_mix(next_q, batch.state[:, 1:]).squeeze(-1)  # [B, T]
            y = L.targets(reward, batch.terminated, batch.mask, next_q_tot, cfg.gamma, cfg.td_lambda, cfg.n_step)  # [B, T]
        q_tot = self.mix(chosen, batch.state[:, :-1]).squeeze(-1)  # [B, T]
        loss, td = L.masked_td_loss(q_tot, y, batch.mask)
        loss_value = float(loss.detach())
        if not math.isfinite(loss_value):
            raise DivergedError(f"loss became {loss_value} at update {self.updates + 1}; stopped. The last good "
                                "checkpoint is kept. Try a lower lr, reward_scale or standardise_rewards=true.")
        self.optimiser.zero_grad(set_to_none=True)
        loss.backward()
        grad_norm = float(torch.nn.utils.clip_grad_norm_(self.params, cfg.grad_clip))
        self.optimiser.step()
        self.updates += 1
        self._update_targets()
        m, q_tot, td = batch.mask.to(q_tot.dtype), q_tot.detach(), td.detach()
        denom = float(m.sum().clamp_min(1.0))
        return UpdateStats(loss=loss_value, grad_norm=grad_norm, q_taken_mean=float((q_tot * m).sum()) / denom,
                           target_mean=float((y * m).sum()) / denom, td_abs_mean=float(td.abs().sum()) / denom)

    def _update_targets(self) -> None:
        if self.cfg.target_update == "soft":
            with torch.no_grad():
                for src, dst in ((self.agent, self.target_agent), (self.mixer, self.target_mixer)):
                    for p, tp in zip(src.parameters(), dst.parameters()):
                        tp.lerp_(p, self.cfg.tau)
        elif self.updates % self.cfg.target_update_interval == 0:
            self.target_agent.load_state_dict(self.agent.state_dict())
            self.target_mixer.load_state_dict(self.mixer.state_dict())

    def state_dict(self) -> dict:
        return {"agent": self.agent.state_dict(), "mixer": self.mixer.state_dict(),
                "target_agent": self.target_agent.state_dict(), "target_mixer": self.target_mixer.state_dict(),
                "optimiser": self.optimiser.state_dict(), "reward_stats": self.reward_stats.state_dict(),
                "updates": self.updates}

    def load_state_dict(self, state: dict) -> None:
        self.agent.load_state_dict(state["agent"])
        self.mixer.load_state_dict(state["mixer"])
        self.target_agent.load_state_dict(state["target_agent"])
        self.target_mixer.load_state_dict(state["target_mixer"])
        self.optimiser.load_state_dict(state["optimiser"])
        self.reward_stats.load_state_dict(state["reward_stats"])
        self.updates = int(state["updates"])
