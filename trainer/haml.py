"""HAPPO, HATRPO and MAPPO: one learner for the heterogeneous-agent mirror-learning family (HARL).

Per iteration, on one rollout (see `onpolicy`):
  1. values denormalised (ValueNorm) -> GAE advantages and returns, truncated episodes bootstrapped;
  2. actors, in a fresh random agent order (`fixed_order`: index order):
       HAPPO  : each agent i_m maximises the clipped surrogate weighted by M, the product of the ratios
                pi_new/pi_old of the agents updated before it; M is updated from agent i_m's new
                log-probs right after its update (Kuba et al. 2022, Alg. 1);
       HATRPO : the same sequence, each agent taking a KL-constrained natural-gradient step (conjugate
                gradient on Fisher-vector products, step from the KL bound, backtracking line search
                that accepts only KL < delta with positive improvement, else reverts);
       MAPPO  : simultaneous updates, M = 1 (with shared parameters: one update on every agent's data);
  3. the critic (EP: V(global state); FP: V(state, o_i, id_i) per agent), clipped Huber value loss.

Actors are one `Actor` per agent (no sharing by default) or one shared actor with a one-hot agent id.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from tfcaf.errors import RejectedError
from tfcaf.tasks.card import TaskCard
from tfcaf.trainer import pg_loss as P
from tfcaf.trainer.actor_critic import Actor, Critic
from tfcaf.trainer.config import TrainConfig
from tfcaf.trainer.onpolicy import Rollout
from tfcaf.trainer.policy import Act


class DivergedPG(RejectedError):
    """A policy-gradient loss became NaN or inf."""


def _onehot(n: int, lead: tuple[int, ...], device: torch.device) -> torch.Tensor:
    return torch.eye(n, device=device).expand(*lead, n, n)  # [..., N, N]


class HAPolicy(nn.Module):
    """The actors, behind the `policy.Policy` protocol: sampling when explore > 0, argmax when 0."""

    def __init__(self, card: TaskCard, cfg: TrainConfig) -> None:
        super().__init__()
        self.n_agents, self.n_actions, self.shared = card.n_agents, card.n_actions, cfg.share_param
        d = card.obs_dim + (card.n_agents if cfg.share_param else 0)
        count = 1 if cfg.share_param else card.n_agents
        self.nets = nn.ModuleList(Actor(d, card.n_actions, cfg.pg_hidden, cfg.recurrent, cfg.feature_norm)
                                  for _ in range(count))

    def actor(self, i: int) -> Actor:
        return self.nets[0 if self.shared else i]

    @property
    def state_size(self) -> int:
        return self.nets[0].trunk.state_size

    def inputs(self, obs: torch.Tensor) -> torch.Tensor:
        """obs [..., N, O] -> actor inputs [..., N, D] (one-hot id appended when parameters are shared)."""
        if not self.shared:
            return obs
        return torch.cat([obs, _onehot(self.n_agents, obs.shape[:-2], obs.device).to(obs.dtype)], -1)

    def initial_hidden(self, n_envs: int, device: torch.device | str) -> torch.Tensor:
        return torch.zeros(n_envs, self.n_agents, self.state_size, device=device)

    @torch.no_grad()
    def act(self, obs: torch.Tensor, last_actions: torch.Tensor, avail: torch.Tensor, hidden: torch.Tensor,
            explore: float, generator: torch.Generator | None = None) -> Act:
        x = self.inputs(obs)  # [E, N, D]
        logits, hs = [], []
        for i in range(self.n_agents):
            lg, h = self.actor(i).step(x[:, i], avail[:, i], hidden[:, i])
            logits.append(lg)
            hs.append(h)
        logits_t = torch.stack(logits, 1)  # [E, N, A]
        logp_all = torch.log_softmax(logits_t, -1)
        if explore > 0:
            e, n, a = logits_t.shape
            actions = torch.multinomial(logp_all.exp().reshape(e * n, a), 1, generator=generator).view(e, n)
        else:
            actions = logits_t.argmax(-1)
        log_prob = logp_all.gather(-1, actions.unsqueeze(-1)).squeeze(-1)  # [E, N]
        return Act(actions, torch.stack(hs, 1), {"log_prob": log_prob})


class HAValue(nn.Module):
    """EP: V(s) shared by all agents; FP: V(s, o_i, id_i), one value per agent. Raw outputs are normalised values."""

    def __init__(self, card: TaskCard, cfg: TrainConfig) -> None:
        super().__init__()
        self.kind, self.n_agents = cfg.value_kind, card.n_agents
        d = card.state_dim + (card.obs_dim + card.n_agents if self.kind == "fp" else 0)
        self.net = Critic(d, cfg.pg_hidden, cfg.recurrent, cfg.feature_norm)
        self.heads = card.n_agents if self.kind == "fp" else 1

    @property
    def state_size(self) -> int:
        return self.net.trunk.state_size

    def inputs(self, state: torch.Tensor, obs: torch.Tensor) -> torch.Tensor:
        """state [..., S], obs [..., N, O] -> [..., K, D]."""
        if self.kind == "ep":
            return state.unsqueeze(-2)
        n = self.n_agents
        ids = _onehot(n, state.shape[:-1], state.device).to(state.dtype)
        return torch.cat([state.unsqueeze(-2).expand(*state.shape[:-1], n, state.shape[-1]), obs, ids], -1)

    def initial_hidden(self, n_envs: int, device: torch.device | str) -> torch.Tensor:
        return torch.zeros(n_envs, self.heads, self.state_size, device=device)

    def step(self, state: torch.Tensor, obs: torch.Tensor, h: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x = self.inputs(state, obs)  # [E, K, D]
        e, k, d = x.shape
        v, h2 = self.net.step(x.reshape(e * k, d), h.reshape(e * k, -1))
        return v.view(e, k).expand(e, self.n_agents), h2.view(e, k, -1)

    def sequence(self, state: torch.Tensor, obs: torch.Tensor, h0: torch.Tensor, starts: torch.Tensor) -> torch.Tensor:
        """state [T, E, S], obs [T, E, N, O], h0 [E, K, H], starts [T, E] -> raw values [T, E, N]."""
        x = self.inputs(state, obs)  # [T, E, K, D]
        t, e, k, d = x.shape
        v = self.net.sequence(x.reshape(t, e * k, d), h0.reshape(e * k, -1),
                              starts.unsqueeze(-1).expand(t, e, k).reshape(t, e * k))
        return v.view(t, e, k).expand(t, e, self.n_agents)


@dataclass(frozen=True)
class Scheme:
    """How an algorithm of this family updates its actors."""

    sequential: bool
    """Agents one after another with the factor M (HAPPO, HATRPO); False: simultaneous, M = 1 (MAPPO)."""
    trust_region: bool
    """KL-constrained natural-gradient step (HATRPO) instead of clipped PPO epochs."""


class HALearner:
    """Actors + critic + ValueNorm + optimisers; `update(rollout)` is one iteration of HAPPO/HATRPO/MAPPO."""

    def __init__(self, policy: HAPolicy, critic: HAValue, cfg: TrainConfig, scheme: Scheme, seed: int = 0) -> None:
        self.policy, self.critic, self.cfg, self.scheme = policy, critic, cfg, scheme
        self.n_agents = policy.n_agents
        self.actor_opts = [torch.optim.Adam(a.parameters(), lr=cfg.lr, eps=cfg.opti_eps) for a in policy.nets]
        self.critic_opt = torch.optim.Adam(critic.parameters(), lr=cfg.critic_lr, eps=cfg.opti_eps)
        self.value_norm = P.ValueNorm().to(next(critic.parameters()).device)
        self.generator = torch.Generator().manual_seed(seed + 2)
        self.updates = 0
        self.last_order: list[int] = []
        self.last_factor_dev: list[float] = []
        """After each agent's update (in order): mean |M - 1| of the factor the next agent would get."""

    # -- data views ---------------------------------------------------------------------------------
    def _agent_view(self, ro: Rollout, agents: list[int]) -> dict[str, torch.Tensor]:
        """The actor-side data of the given agents, merged along the env axis: [T, E*len(agents), ...]."""
        d = ro.data
        x = self.policy.inputs(d["obs"][:-1])  # [T, E, N, D]
        cat = lambda t: torch.cat([t[:, :, i] for i in agents], 1)  # noqa: E731
        starts = ro.starts
        return {"x": cat(x), "avail": cat(d["avail"][:-1]), "actions": cat(d["actions"]), "old_logp": cat(d["log_prob"]),
                "h0": torch.cat([ro.actor_h0[:, i] for i in agents], 0), "starts": torch.cat([starts] * len(agents), 1)}

    def _logits(self, actor: Actor, v: dict[str, torch.Tensor]) -> torch.Tensor:
        if actor.trunk.recurrent:
            return actor.sequence(v["x"], v["avail"], v["h0"], v["starts"])  # [T, B, A]
        return actor.logits(v["x"], v["avail"])

    def _minibatches(self, t: int, b: int, recurrent: bool) -> list[tuple[slice | torch.Tensor, torch.Tensor]]:
        """Index sets: over envs for recurrent nets (whole sequences), over (t, env) pairs otherwise."""
        k = self.cfg.num_mini_batch
        if recurrent:
            perm = torch.randperm(b, generator=self.generator)
            return [(slice(None), c) for c in perm.chunk(min(k, b))]
        perm = torch.randperm(t * b, generator=self.generator)
        return [(c // b, c % b) for c in perm.chunk(min(k, t * b))]

    @staticmethod
    def _take(v: dict[str, torch.Tensor], tt: Any, bb: torch.Tensor) -> dict[str, torch.Tensor]:
        if isinstance(tt, slice):
            return {k: (x[bb] if k == "h0" else x[:, bb]) for k, x in v.items()}
        return {k: x for k, x in v.items() if k in ("h0", "starts")} | {k: x[tt, bb].unsqueeze(0) for k, x in v.items()
                                                                       if k not in ("h0", "starts")}

    # -- one iteration ------------------------------------------------------------------------------
    def update(self, ro: Rollout) -> dict[str, float]:
        cfg, d = self.cfg, ro.data
        n = self.n_agents
        with torch.no_grad():
            denorm = self.value_norm.denormalize if cfg.use_valuenorm else (lambda x: x)
            values = denorm(d["value"])  # [T+1, E, N]
            final_value = denorm(d["final_value"])
            reward = (d["reward"] * cfg.reward_scale).unsqueeze(-1).expand_as(d["log_prob"])  # [T, E, N]
            adv, returns = P.gae(reward, values, d["done"], d["terminated"], final_value, cfg.gamma, cfg.gae_lambda)
            adv = (adv - adv.mean()) / (adv.std() + 1e-5)  # HARL normalises advantages over the batch
        order = torch.randperm(n, generator=self.generator).tolist()
        if cfg.fixed_order:
            order = list(range(n))
        self.last_order, self.last_factor_dev = order, []
        stats: dict[str, list[float]] = {"policy_loss": [], "entropy": [], "ratio": [], "kl": [], "accepted": [],
                                         "actor_grad_norm": []}
        if not self.scheme.sequential and self.policy.shared:
            groups = [list(range(n))]  # MAPPO with shared parameters: one update on every agent's data
        else:
            groups = [[i] for i in order]
        factor = torch.ones_like(adv[..., 0])  # [T, E]
        for agents in groups:
            v = self._agent_view(ro, agents)
            v["adv"] = torch.cat([adv[:, :, i] for i in agents], 1)
            v["factor"] = torch.cat([factor] * len(agents), 1) if self.scheme.sequential else torch.ones_like(v["adv"])
            i = agents[0]
            actor, opt = self.policy.actor(i), self.actor_opts[0 if self.policy.shared else i]
            if self.scheme.trust_region:
                self._trpo_step(actor, v, stats)
            else:
                self._ppo_epochs(actor, opt, v, stats)
            if self.scheme.sequential:
                with torch.no_grad():
                    logp = torch.log_softmax(self._logits(actor, v), -1).gather(-1, v["actions"].unsqueeze(-1)).squeeze(-1)
                    factor = factor * torch.exp(logp - v["old_logp"])  # [T, E]
                    self.last_factor_dev.append(float((factor - 1.0).abs().mean()))
        value_stats = self._critic_epochs(ro, returns)
        self.updates += 1
        mean = lambda xs: sum(xs) / len(xs) if xs else None  # noqa: E731
        out = {k: mean(xs) for k, xs in stats.items()} | value_stats
        out["advantage_raw_mean"] = float(returns.mean() - values[:-1].mean())
        for key, value in out.items():
            if value is not None and not math.isfinite(value):
                raise DivergedPG(f"{key} became {value} at iteration {self.updates}; stopped. The last good checkpoint "
                                 "is kept. Try a lower lr or reward_scale.")
        return out

    def _check_finite(self, loss: torch.Tensor, what: str) -> None:
        """Stop before a NaN/inf loss can step an optimiser (the last good checkpoint stays valid)."""
        value = float(loss.detach())
        if not math.isfinite(value):
            raise DivergedPG(f"{what} became {value} at iteration {self.updates + 1}; stopped. The last good checkpoint "
                             "is kept. Try a lower lr or reward_scale.")

    def _ppo_epochs(self, actor: Actor, opt: torch.optim.Optimizer, v: dict[str, torch.Tensor],
                    stats: dict[str, list[float]]) -> None:
        cfg = self.cfg
        t, b = v["adv"].shape
        for _ in range(cfg.ppo_epoch):
            for tt, bb in self._minibatches(t, b, actor.trunk.recurrent):
                mb = self._take(v, tt, bb)
                logits = self._logits(actor, mb)
                logp_all = torch.log_softmax(logits, -1)
                logp = logp_all.gather(-1, mb["actions"].unsqueeze(-1)).squeeze(-1)
                entropy = -(logp_all.exp() * logp_all).sum(-1).mean()
                surrogate = P.happo_surrogate(logp, mb["old_logp"], mb["adv"], mb["factor"], cfg.clip_param)
                loss = -surrogate - cfg.entropy_coef * entropy
                self._check_finite(loss, "policy loss")
                opt.zero_grad(set_to_none=True)
                loss.backward()
                gn = float(nn.utils.clip_grad_norm_(actor.parameters(), cfg.grad_clip))
                opt.step()
                stats["policy_loss"].append(float(-surrogate.detach()))
                stats["entropy"].append(float(entropy.detach()))
                stats["ratio"].append(float(torch.exp(logp - mb["old_logp"]).mean().detach()))
                stats["actor_grad_norm"].append(gn)

    def _trpo_step(self, actor: Actor, v: dict[str, torch.Tensor], stats: dict[str, list[float]]) -> bool:
        """One KL-constrained natural-gradient step; returns whether the line search accepted (else reverted)."""
        cfg = self.cfg
        params = [p for p in actor.parameters() if p.requires_grad]
        with torch.no_grad():
            old_logits = self._logits(actor, v).detach()

        def surrogate() -> torch.Tensor:
            logp = torch.log_softmax(self._logits(actor, v), -1).gather(-1, v["actions"].unsqueeze(-1)).squeeze(-1)
            return (v["factor"] * torch.exp(logp - v["old_logp"]) * v["adv"]).mean()

        def mean_kl() -> torch.Tensor:
            return P.categorical_kl(old_logits, self._logits(actor, v)).mean()

        loss = surrogate()
        self._check_finite(loss, "surrogate")
        grad = torch.cat([g.reshape(-1) for g in torch.autograd.grad(loss, params)])
        if not bool(grad.abs().sum() > 0):
            stats["accepted"].append(0.0)
            return False

        def fvp(vec: torch.Tensor) -> torch.Tensor:
            g_kl = torch.autograd.grad(mean_kl(), params, create_graph=True)
            flat = torch.cat([g.reshape(-1) for g in g_kl])
            hv = torch.autograd.grad(flat @ vec, params)
            return torch.cat([g.reshape(-1) for g in hv]).detach() + cfg.fisher_damping * vec

        step_dir = P.conjugate_gradient(fvp, grad, cfg.cg_iters)
        shs = 0.5 * (step_dir @ fvp(step_dir))
        full_step = step_dir / torch.sqrt(shs.clamp_min(1e-12) / cfg.kl_threshold)
        expected = float(grad @ full_step)
        old = P.flat_params(actor)
        old_loss = float(loss.detach())
        fraction, accepted, kl_value = 1.0, False, 0.0
        for _ in range(cfg.ls_step):
            P.set_flat_params(actor, old + fraction * full_step)
            with torch.no_grad():
                improve = float(surrogate()) - old_loss
                kl_value = float(mean_kl())
            if kl_value < cfg.kl_threshold and improve > 0 and improve / max(expected * fraction, 1e-12) > cfg.accept_ratio:
                accepted = True
                break
            fraction *= 0.5
        if not accepted:
            P.set_flat_params(actor, old)
            kl_value = 0.0
        stats["kl"].append(kl_value)
        stats["accepted"].append(float(accepted))
        stats["policy_loss"].append(-old_loss)
        return accepted

    def _critic_epochs(self, ro: Rollout, returns: torch.Tensor) -> dict[str, float]:
        cfg, d = self.cfg, ro.data
        t, e, n = returns.shape
        losses, norms = [], []
        recurrent = self.critic.net.trunk.recurrent
        old_values = d["value"][:-1]  # [T, E, N] raw (normalised space)
        starts = ro.starts
        for _ in range(cfg.ppo_epoch):
            for tt, bb in self._minibatches(t, e, recurrent):
                if isinstance(tt, slice):
                    vals = self.critic.sequence(d["state"][:-1][:, bb], d["obs"][:-1][:, bb], ro.critic_h0[bb], starts[:, bb])
                    ret, old = returns[:, bb], old_values[:, bb]
                else:
                    vals = self.critic.sequence(d["state"][tt, bb].unsqueeze(0), d["obs"][tt, bb].unsqueeze(0),
                                                ro.critic_h0[bb], torch.zeros(1, bb.numel(), dtype=torch.bool, device=returns.device))
                    ret, old = returns[tt, bb].unsqueeze(0), old_values[tt, bb].unsqueeze(0)
                if cfg.use_valuenorm:
                    self.value_norm.update(ret)
                    ret = self.value_norm.normalize(ret)
                loss = cfg.value_loss_coef * P.value_loss(vals, old, ret, cfg.clip_param, cfg.use_huber_loss,
                                                          cfg.huber_delta, cfg.use_clipped_value_loss)
                self._check_finite(loss, "value loss")
                self.critic_opt.zero_grad(set_to_none=True)
                loss.backward()
                norms.append(float(nn.utils.clip_grad_norm_(self.critic.parameters(), cfg.grad_clip)))
                self.critic_opt.step()
                losses.append(float(loss.detach()))
        return {"value_loss": sum(losses) / len(losses), "critic_grad_norm": sum(norms) / len(norms)}

    # -- checkpoints --------------------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        return {"policy": self.policy.state_dict(), "critic": self.critic.state_dict(),
                "actor_opts": [o.state_dict() for o in self.actor_opts], "critic_opt": self.critic_opt.state_dict(),
                "value_norm": self.value_norm.state_dict(), "generator": self.generator.get_state(), "updates": self.updates}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.policy.load_state_dict(state["policy"])
        self.critic.load_state_dict(state["critic"])
        for o, s in zip(self.actor_opts, state["actor_opts"]):
            o.load_state_dict(s)
        self.critic_opt.load_state_dict(state["critic_opt"])
        self.value_norm.load_state_dict(state["value_norm"])
        self.generator.set_state(state["generator"])
        self.updates = int(state["updates"])
