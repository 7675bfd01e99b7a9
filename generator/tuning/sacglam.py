"""SAC-GLAM: a goal-conditioned refinement agent trained off-policy with discrete soft actor-critic and
hindsight relabelling (Gaven et al. 2024, "SAC-GLAM: Improving Online RL for LLM Agents with Soft
Actor-Critic and Hindsight Relabeling"), over the refinement MDP of `tfcaf.evaluator.refine`.

- Actor: GLAM scoring (`glam.GlamScorer`): the logit of an operator is the (mean, by default; see
  `SacConfig.glam_norm`) log-prob of its text's tokens given `observation(state)`; pi = softmax over the
  operators. LoRA on the top decoder layers is what the actor loss trains.
- Critic: two Q heads (MLP, one output per operator: the operator set is fixed) on the *frozen base's*
  final hidden state at the prompt's last token ("Action:"; `GlamScorer.prompt_hidden`, cached with the
  prompt), trained in full. The adapter is the actor's alone. Measured on the toy task: Q heads reading
  the adapted model's hidden states lost their features as the actor moved the adapter (every Q drifted
  to ~0.9 whatever the action), and per-action hidden states at the action's last token blurred the goal
  (Q preferred the wrong operator for 2 of 3 goals); the prompt's last hidden state kept both. Targets
  are Polyak-averaged copies of the heads.
- Losses (`losses.sac_*`): n-step soft critic target with termination, exact expectation over actions
  in the actor loss, a learned temperature alpha driven towards `target_entropy_ratio * log(A)`.
- Replay buffer of n-step transitions, critic-only warm-up of `warmup` updates.
- Hindsight relabelling: an episode that missed its goal is stored again under up to `her_goals` goals
  it achieved on the way (never one it did not achieve, nor one already achieved at reset), cut where the
  new goal is first reached, observations re-rendered with the new goal and rewards recomputed with the
  env's `goal_reward`.

The core works on plain strings and ints (`observe(state) -> str`, `goal_reward(goal, achieved, total)`
injected) so it runs on a toy env with the same reset/step shape; `tune_sacglam` wires it to the real
`RefineEnv` and writes the usual generator folder; `load_refiner` serves a trained one.

    agent = SacGlamAgent(policy, [op.text for op in env.operators], SacConfig())
    summary = train(agent, [env], SacConfig(), observe, goal_reward, steps=50)
    refiner = load_refiner(store / "generators" / "r1");  refiner.choose(state, operators)
"""

from __future__ import annotations

import copy
import dataclasses
import json
import math
import random
import time
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Sequence

import torch

from tfcaf.errors import UsageError
from tfcaf.generator.tuning.glam import GlamScorer, lm_parts, num_layers
from tfcaf.generator.tuning.losses import (polyak_update, sac_actor_loss, sac_alpha_loss, sac_critic_loss,
                                           sac_critic_target)

METHOD = "sac-glam"
CRITIC_FILE = "critic.safetensors"


@dataclass(frozen=True)
class SacConfig:
    """SAC-GLAM's hyper-parameters (the values `tfcaf tune --method sac-glam` uses)."""

    gamma: float = 0.9
    """Discount per refinement step."""
    n_step: int = 2
    """n of the n-step critic target (shortened at an episode's end)."""
    tau: float = 0.05
    """Polyak rate of the target Q heads."""
    lr_actor: float = 1e-3
    """Adam learning rate of the LoRA adapter (the actor)."""
    lr_critic: float = 3e-3
    """Adam learning rate of the Q heads."""
    lr_alpha: float = 3e-3
    """Adam learning rate of log alpha."""
    init_alpha: float = 0.05
    """Initial temperature (rewards are in [0, 1 + shaping])."""
    target_entropy_ratio: float = 0.5
    """Target entropy = ratio * log(number of operators)."""
    batch: int = 16
    """Transitions per update."""
    buffer: int = 20000
    """Replay capacity (transitions)."""
    warmup: int = 20
    """Critic-only updates before the actor and alpha start learning."""
    start_transitions: int = 16
    """Transitions in the buffer before the first update."""
    updates_per_step: int = 1
    """Updates after each environment step."""
    explore_eps: float = 0.2
    """Behaviour policy: a uniformly random operator with this probability, else a sample from pi (SAC is
    off-policy; a GLAM policy can start with near-zero probability on the useful operators)."""
    her: bool = True
    """Hindsight relabelling of missed episodes."""
    her_goals: int = 2
    """At most this many relabelled copies of a missed episode (distinct achieved goals)."""
    top_layers: int = 2
    """Decoder layers (from the top) carrying the LoRA adapter; the rest are frozen and cached."""
    glam_norm: str = "mean"
    """GLAM logit per action: 'sum' of its token log-probs (the paper) or their 'mean'. Measured on SmolLM2
    with the refinement operators, 'sum' put pi(stop) at 0.99997 at initialisation (one token vs up to 9),
    which leaves the actor no gradient to learn from; 'mean' starts from a spread-out policy."""
    q_hidden: int = 128
    """Width of each Q head's hidden layer."""
    max_chars: int = 1500
    """Candidate text clip of `observation(state, max_chars)`."""
    grad_clip: float = 1.0
    """Gradient-norm clip of the actor and critic updates."""

    def check(self) -> "SacConfig":
        if self.glam_norm not in ("sum", "mean"):
            raise UsageError(f"--glam-norm must be sum or mean, got '{self.glam_norm}'.")
        if not 0 < self.gamma <= 1 or not 0 < self.tau <= 1 or self.n_step < 1 or self.top_layers < 1:
            raise UsageError("sac-glam: need 0 < gamma <= 1, 0 < tau <= 1, n_step >= 1, top_layers >= 1.")
        if self.warmup < 0 or self.batch < 1 or self.buffer < self.batch:
            raise UsageError("sac-glam: need warmup >= 0, batch >= 1 and buffer >= batch.")
        return self


# -- episodes and transitions ----------------------------------------------------------------------
@dataclass(frozen=True)
class Transition:
    """One n-step transition, as plain data: observation texts, the action index and the n-step return."""

    obs: str
    action: int
    ret: float
    """sum_{k<m} gamma^k r_{t+k} (m = n, or fewer at the episode's end)."""
    next_obs: str
    discount: float
    """gamma^m."""
    done: bool
    """The episode terminated within these m steps (no bootstrap)."""
    goal: str
    relabeled: bool = False


@dataclass
class Episode:
    """states[0..T] (RefineState-like: `goal`, `achieved`, `reward_total`), actions/rewards[0..T-1]."""

    states: list[Any]
    actions: list[int] = field(default_factory=list)
    rewards: list[float] = field(default_factory=list)
    terminal: bool = False
    """The episode's last transition does not bootstrap. Every end of a refinement episode is one: the
    goal reached, "stop", or the horizon H, which is part of the task (the refiner gets no further step;
    bootstrapping a horizon cut from a state it never acts in taught the toy critic Q ~ 0.7 for
    operators worth 0)."""
    relabeled_from: str | None = None

    @property
    def goal(self) -> str:
        return self.states[0].goal

    @property
    def success(self) -> bool:
        return any(self.goal in s.achieved for s in self.states[1:])


def nstep_transitions(obs: Sequence[str], actions: Sequence[int], rewards: Sequence[float], terminal: bool,
                      n: int, gamma: float, goal: str = "", relabeled: bool = False) -> list[Transition]:
    """n-step transitions of one episode. obs has T+1 entries (s_0..s_T), actions/rewards T.

    For step t, m = min(n, T - t): ret = sum_{k<m} gamma^k r_{t+k}, next = obs[t+m], discount = gamma^m,
    done = terminal and t + m == T (a horizon cut bootstraps from s_T)."""
    T = len(actions)
    if len(obs) != T + 1 or len(rewards) != T:
        raise ValueError(f"episode of {T} actions needs {T + 1} observations and {T} rewards")
    out = []
    for t in range(T):
        m = min(n, T - t)
        ret = sum(gamma ** k * float(rewards[t + k]) for k in range(m))
        out.append(Transition(obs[t], int(actions[t]), ret, obs[t + m], gamma ** m, bool(terminal and t + m == T),
                              goal, relabeled))
    return out


def relabel(episode: Episode, goal_reward: Callable[[str, Iterable[str], float], float], k: int,
            rng: random.Random, allowed: Iterable[str] | None = None) -> list[Episode]:
    """Hindsight copies of a missed episode: up to k distinct goals achieved on the way (in states[1:],
    not already in states[0], in `allowed` when given). Each copy is cut at the first state achieving its
    goal (so it terminates there), every state carries the new goal and every reward is recomputed as
    goal_reward(new_goal, achieved, reward_total) of the state the step led to. Successful episodes and
    goals never achieved give nothing."""
    if episode.success or k <= 0:
        return []
    allowed_set = None if allowed is None else set(allowed)
    first: dict[str, int] = {}
    for t, s in enumerate(episode.states[1:], start=1):
        for g in s.achieved:
            if g not in first and g not in episode.states[0].achieved and g != episode.goal \
                    and (allowed_set is None or g in allowed_set):
                first[g] = t
    goals = sorted(first)
    rng.shuffle(goals)
    out = []
    for g in goals[:k]:
        cut = first[g]
        states = [dataclasses.replace(s, goal=g) for s in episode.states[: cut + 1]]
        rewards = [float(goal_reward(g, s.achieved, s.reward_total)) for s in episode.states[1: cut + 1]]
        out.append(Episode(states, list(episode.actions[:cut]), rewards, True, relabeled_from=episode.goal))
    return out


class ReplayBuffer:
    """Uniform replay over the last `capacity` transitions."""

    def __init__(self, capacity: int, seed: int = 0) -> None:
        self.items: deque[Transition] = deque(maxlen=capacity)
        self.rng = random.Random(seed)

    def add(self, items: Iterable[Transition]) -> None:
        self.items.extend(items)

    def __len__(self) -> int:
        return len(self.items)

    def sample(self, n: int) -> list[Transition]:
        return [self.items[self.rng.randrange(len(self.items))] for _ in range(n)]


# -- the agent -------------------------------------------------------------------------------------
class QHeads(torch.nn.Module):
    """Two Q heads over the prompt's hidden state, one output per action: [B, H] -> [2, B, A]."""

    def __init__(self, hidden: int, n_actions: int, width: int = 128) -> None:
        super().__init__()
        self.heads = torch.nn.ModuleList(torch.nn.Sequential(torch.nn.Linear(hidden, width), torch.nn.ReLU(),
                                                             torch.nn.Linear(width, n_actions)) for _ in range(2))

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        return torch.stack([head(h) for head in self.heads])  # [2, B, A]


class SacGlamAgent:
    """The actor (GLAM over the policy's LoRA adapter), the twin Q heads with their targets, alpha."""

    def __init__(self, policy: Any, action_texts: Sequence[str], config: SacConfig, seed: int = 0) -> None:
        self.policy, self.config = policy, config.check()
        self.scorer = GlamScorer(policy, action_texts, min(config.top_layers, num_layers(policy.model)), config.glam_norm)
        self.n_actions = len(action_texts)
        torch.manual_seed(seed)
        hidden = int(lm_parts(policy.model).config.hidden_size)
        dev = policy.device
        self.q = QHeads(hidden, self.n_actions, config.q_hidden).to(dev)
        self.q_target = copy.deepcopy(self.q).requires_grad_(False)
        self.log_alpha = torch.tensor(math.log(config.init_alpha), device=dev, requires_grad=True)
        self.opt_actor = torch.optim.Adam(policy.trainable(), lr=config.lr_actor)
        self.opt_critic = torch.optim.Adam(self.q.parameters(), lr=config.lr_critic)
        self.opt_alpha = torch.optim.Adam([self.log_alpha], lr=config.lr_alpha)
        self.target_entropy = config.target_entropy_ratio * math.log(self.n_actions)
        self.updates = 0
        self._ids: dict[str, list[int]] = {}

    @property
    def alpha(self) -> float:
        return float(self.log_alpha.detach().exp())

    def ids(self, text: str) -> list[int]:
        hit = self._ids.get(text)
        if hit is None:
            if len(self._ids) > 100000:
                self._ids.clear()
            hit = self._ids[text] = self.scorer.prompt_ids(text)
        return hit

    @torch.no_grad()
    def probs(self, obs: str) -> torch.Tensor:
        """pi(.|obs) [A]."""
        logits, _ = self.scorer.score([self.ids(obs)])
        return torch.softmax(logits[0], -1)

    @torch.no_grad()
    def q_values(self, obs: str) -> torch.Tensor:
        """min over the two critics of Q(obs, .) [A]."""
        return self.q(self.scorer.prompt_hidden([self.ids(obs)])).min(0).values[0]

    def act(self, obs: str, rng: random.Random, greedy: bool = False, eps: float = 0.0) -> int:
        """argmax pi (greedy), else a sample from pi, or with probability eps a uniform operator."""
        if not greedy and eps > 0 and rng.random() < eps:
            return rng.randrange(self.n_actions)
        p = self.probs(obs)
        if greedy:
            return int(p.argmax())
        return rng.choices(range(self.n_actions), weights=p.tolist())[0]

    def update(self, batch: Sequence[Transition]) -> dict[str, float]:
        """One SAC update on `batch`: critic always; actor and alpha after the warm-up; Polyak target."""
        c = self.config
        actor_on = self.updates >= c.warmup
        dev = self.policy.device
        B = len(batch)
        prompts = [self.ids(t.obs) for t in batch]
        with torch.set_grad_enabled(actor_on):
            logits, _ = self.scorer.score(prompts)  # [B, A]
        logp = torch.log_softmax(logits, -1)  # [B, A]
        probs = logp.exp()
        q_all = self.q(self.scorer.prompt_hidden(prompts))  # [2, B, A]
        actions = torch.tensor([t.action for t in batch], device=dev)  # [B]
        q_taken = q_all.gather(-1, actions.view(1, B, 1).expand(2, B, 1)).squeeze(-1)  # [2, B]
        returns = torch.tensor([t.ret for t in batch], device=dev)
        discounts = torch.tensor([t.discount for t in batch], device=dev)
        dones = torch.tensor([t.done for t in batch], device=dev)
        A = self.n_actions
        next_probs = torch.zeros(B, A, device=dev)
        next_logp = torch.zeros(B, A, device=dev)
        next_q = torch.zeros(B, A, device=dev)
        live = [i for i, t in enumerate(batch) if not t.done]
        if live:  # terminal transitions need no next-state forward
            with torch.no_grad():
                nprompts = [self.ids(batch[i].next_obs) for i in live]
                nl, _ = self.scorer.score(nprompts)
                nh = self.scorer.prompt_hidden(nprompts)  # [L, H]
                nlp = torch.log_softmax(nl, -1)
                idx = torch.tensor(live, device=dev)
                next_logp[idx] = nlp
                next_probs[idx] = nlp.exp()
                next_q[idx] = self.q_target(nh).min(0).values
        alpha = self.log_alpha.detach().exp()
        target = sac_critic_target(returns, discounts, dones, next_probs, next_logp, next_q, alpha)  # [B]
        critic = sac_critic_loss(q_taken, target)
        self.opt_critic.zero_grad(set_to_none=True)
        critic.backward()
        torch.nn.utils.clip_grad_norm_(self.q.parameters(), c.grad_clip)
        self.opt_critic.step()
        entropy = float(-(probs.detach() * logp.detach()).sum(-1).mean())
        info = {"critic_loss": float(critic.detach()), "q_mean": float(q_taken.detach().mean()),
                "target_mean": float(target.mean()), "entropy": entropy, "alpha": float(alpha)}
        if actor_on:
            actor = sac_actor_loss(probs, logp, q_all.detach().min(0).values, alpha)
            self.opt_actor.zero_grad(set_to_none=True)
            actor.backward()
            torch.nn.utils.clip_grad_norm_(self.policy.trainable(), c.grad_clip)
            self.opt_actor.step()
            a_loss = sac_alpha_loss(self.log_alpha, probs.detach(), logp.detach(), self.target_entropy)
            self.opt_alpha.zero_grad(set_to_none=True)
            a_loss.backward()
            self.opt_alpha.step()
            info.update(actor_loss=float(actor.detach()), alpha_loss=float(a_loss.detach()))
        polyak_update(self.q_target, self.q, c.tau)
        self.updates += 1
        return info

    # -- persistence -----------------------------------------------------------------------------
    def critic_state(self) -> dict[str, torch.Tensor]:
        out = {f"q.{k}": v.detach().cpu().contiguous() for k, v in self.q.state_dict().items()}
        out.update({f"q_target.{k}": v.detach().cpu().contiguous() for k, v in self.q_target.state_dict().items()})
        out["log_alpha"] = self.log_alpha.detach().cpu().reshape(1)
        return out

    def load_critic_state(self, state: dict[str, torch.Tensor]) -> None:
        self.q.load_state_dict({k[2:]: v for k, v in state.items() if k.startswith("q.")})
        self.q_target.load_state_dict({k[9:]: v for k, v in state.items() if k.startswith("q_target.")})
        with torch.no_grad():
            self.log_alpha.copy_(state["log_alpha"].reshape(()))


# -- the training loop -----------------------------------------------------------------------------
def train(agent: SacGlamAgent, envs: Sequence[Any], config: SacConfig, observe: Callable[[Any], str],
          goal_reward: Callable[[str, Iterable[str], float], float], *, steps: int, seed: int = 0,
          metrics: Any = None, progress: Callable[..., None] | None = None,
          on_episode: Callable[[Any, Episode, list[Episode]], None] | None = None,
          rebuild: Callable[[Any, Episode], Episode] | None = None) -> dict[str, Any]:
    """Collect episodes with the current policy (sampled), store n-step transitions (+ hindsight copies),
    and run `steps` SAC updates. Returns the summary (episodes, success rates, losses, wall time).

    `envs` are cycled per episode; each has reset(seed=) -> state and step(a) -> (state, r, done, info).
    `metrics.log(step, **values)` gets one line per update and one per episode; `rebuild(env, ep)` may
    replace a finished episode by the env's own record of it (the run log: `episode_from_log`; its
    actions must match); `on_episode(env, ep, copies)` sees every finished episode and its hindsight
    copies. Hindsight goals are restricted to the env's `goals` when it has them."""
    rng = random.Random(seed)
    buffer = ReplayBuffer(config.buffer, seed)
    log = metrics.log if metrics is not None else (lambda *a, **k: None)
    t0 = time.perf_counter()
    episodes: list[Episode] = []
    recent: deque[float] = deque(maxlen=20)
    last: dict[str, float] = {}
    env_steps = relabeled = 0
    act_s = env_s = upd_s = 0.0
    while agent.updates < steps:
        env = envs[len(episodes) % len(envs)]
        state = env.reset(seed=seed * 100003 + len(episodes))
        ep = Episode([state])
        done = False
        while not done:
            t = time.perf_counter()
            action = agent.act(observe(state), rng, eps=config.explore_eps)
            act_s += time.perf_counter() - t
            t = time.perf_counter()
            state, reward, done, info = env.step(action)
            env_s += time.perf_counter() - t
            env_steps += 1
            ep.states.append(state)
            ep.actions.append(action)
            ep.rewards.append(float(reward))
            if done:
                ep.terminal = True  # see Episode.terminal
                if rebuild is not None:
                    logged = rebuild(env, ep)
                    if logged.actions != ep.actions or logged.goal != ep.goal:
                        raise RuntimeError("the run log's episode differs from the one just played")
                    ep = logged
                allowed = getattr(env, "goals", None)
                copies = relabel(ep, goal_reward, config.her_goals, rng, allowed) if config.her else []
                for e in [ep, *copies]:
                    buffer.add(nstep_transitions([observe(s) for s in e.states], e.actions, e.rewards, e.terminal,
                                                 config.n_step, config.gamma, e.goal, e.relabeled_from is not None))
                relabeled += len(copies)
                episodes.append(ep)
                recent.append(float(ep.success))
                if on_episode is not None:
                    on_episode(env, ep, copies)
                log(agent.updates, episode=len(episodes), success=float(ep.success), goal=ep.goal,
                    episode_return=sum(ep.rewards), episode_length=len(ep.actions), relabeled=len(copies),
                    success_rate_20=sum(recent) / len(recent), env_steps=env_steps)
            if len(buffer) >= max(config.start_transitions, 1):
                for _ in range(config.updates_per_step):
                    if agent.updates >= steps:
                        break
                    t = time.perf_counter()
                    last = agent.update(buffer.sample(config.batch))
                    upd_s += time.perf_counter() - t
                    log(agent.updates - 1, **last, update_s=time.perf_counter() - t, buffer=len(buffer))
                    if progress is not None:
                        progress(agent.updates - 1, loss=last.get("critic_loss"))
    n = len(episodes)
    half = episodes[n // 2:]
    return {"episodes": n, "env_steps": env_steps, "updates": agent.updates, "relabeled_episodes": relabeled,
            "transitions": len(buffer), "success_rate": sum(e.success for e in episodes) / max(1, n),
            "success_rate_first_half": sum(e.success for e in episodes[: n // 2]) / max(1, n // 2),
            "success_rate_second_half": sum(e.success for e in half) / max(1, len(half)),
            "success_rate_last_20": sum(recent) / max(1, len(recent)), "alpha": agent.alpha,
            "last_update": last, "wall_s": round(time.perf_counter() - t0, 3), "act_s": round(act_s, 3),
            "env_s": round(env_s, 3), "update_s": round(upd_s, 3),
            "cache": {"hits": agent.scorer.hits, "misses": agent.scorer.misses}}


def evaluate_policy(choose: Callable[[Any], int], envs: Sequence[Any], episodes: int, seed: int = 0) -> dict[str, Any]:
    """Success rate of a state -> action policy over `episodes` episodes (envs cycled, seeded resets)."""
    wins = steps = 0
    for i in range(episodes):
        env = envs[i % len(envs)]
        state = env.reset(seed=seed * 100003 + 7 + i)
        done = False
        goal = state.goal
        while not done:
            state, _, done, _ = env.step(choose(state))
            steps += 1
        wins += goal in state.achieved
    return {"episodes": episodes, "success_rate": wins / max(1, episodes), "steps_per_episode": steps / max(1, episodes)}


# -- `tfcaf tune --method sac-glam` ---------------------------------------------------------------
def sac_config_of(config: Any) -> SacConfig:
    """The SacConfig of a TuneConfig (its sac-glam fields; the rest are SacConfig's defaults)."""
    return SacConfig(lr_actor=config.lr, lr_alpha=config.alpha_lr, batch=config.batch, warmup=config.warmup, her=config.her,
                     top_layers=config.top_layers, glam_norm=config.glam_norm,
                     start_transitions=max(config.batch, SacConfig.start_transitions)).check()


def episode_from_log(env: Any) -> Episode:
    """The env's last episode as its run log has it (`refine.read_episodes`): the replay buffer is fed
    from the same events that `tfcaf dataset build` turns into rows."""
    from tfcaf.evaluator.refine import read_episodes

    logged = read_episodes(env.rundir)
    if not logged or not logged[-1]["steps"]:
        raise RuntimeError("the refinement run log has no finished episode")
    last = logged[-1]
    return Episode([last["start"], *(s["next_state"] for s in last["steps"])], [s["action"] for s in last["steps"]],
                   [s["reward"] for s in last["steps"]], True)


def log_relabels(env: Any, episode: Episode, copies: list[Episode]) -> None:
    """Append the hindsight copies of the env's last episode to its run log (`refine_relabel` events)."""
    for c in copies:
        env.rundir.append({"type": "refine_relabel", "episode": env.episode, "goal": c.goal,
                           "relabeled_from": c.relabeled_from, "steps": len(c.actions), "actions": c.actions,
                           "rewards": c.rewards, "achieved_at": [list(s.achieved) for s in c.states[1:]]})


def task_goals(tasks: Sequence[str], goals: Sequence[str], mode: str) -> dict[str, list[str]]:
    """Each task's goal pool: `refine_goals(card, mode)`, or the requested goals among them (a goal a
    task cannot have, such as masks_dead_agents without an alive flag, is left out for that task)."""
    from tfcaf.evaluator.refine import refine_goals
    from tfcaf.tasks.registry import get_card

    out = {}
    for t in tasks:
        pool = refine_goals(get_card(t), mode)
        if goals:
            pool = [g for g in goals if g in pool]
            if not pool:
                raise UsageError(f"--goals: none of {', '.join(goals)} is a refinement goal of {t} "
                                 f"(see tfcaf.evaluator.refine.refine_goals).")
        out[t] = pool
    return out


def run_sacglam(config: Any, base: Any, out: Path, progress: Callable[..., None] | None = None,
                env_factory: Callable[..., Any] | None = None) -> dict[str, Any]:
    """Train a SAC-GLAM refiner on `config.tasks` (RefineEnv per task, one shared vetter) and write
    `out` = <store>/generators/NAME/: adapter/ (LoRA), critic.safetensors (Q heads, targets, alpha),
    manifest.json (method sac-glam, operators, SAC config, training summary), metrics.jsonl, tb/.
    The transitions are in each env's run log under <store>/runs/<task>/refine-*/ (named in the manifest)."""
    import contextlib
    import datetime

    from tfcaf.generator.tuning.policy import Policy
    from tfcaf.generator.tuning.train import MANIFEST_KIND, Metrics, _versions, _write_json, save_policy

    sac = sac_config_of(config)
    n_layers = num_layers(base.model)
    top = min(sac.top_layers, n_layers)
    policy = Policy.build(base, lora=True, rank=config.lora_rank, layers=list(range(n_layers - top, n_layers)))
    started = datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")
    manifest: dict[str, Any] = {
        "kind": MANIFEST_KIND, "name": config.name, "method": METHOD, "mode": config.mode, "base": base.identity,
        "adapter": "lora", "config": config.to_json(), "seed": config.seed, "versions": _versions(),
        "started_at": started, "status": "running", "data": {"path": None, "sha256": None, "rows": 0},
        "sac": dataclasses.asdict(sac), "refiner": {"top_layers": top, "glam_norm": sac.glam_norm,
                                                    "max_chars": sac.max_chars, "policy": "greedy"},
    }
    _write_json(out / "manifest.json", manifest)
    metrics = Metrics(out)
    with contextlib.ExitStack() as stack:
        try:
            if env_factory is None:
                from tfcaf.evaluator.refine import RefineEnv, goal_reward, observation
                from tfcaf.generator.session import default_vetter

                pools = task_goals(config.tasks, config.goals, config.mode)
                vet = stack.enter_context(default_vetter(config.threads, None if config.store is None else Path(config.store)))
                envs = [stack.enter_context(RefineEnv(t, mode=config.mode, horizon=config.horizon, goals=pools[t],
                                                      seed=config.seed + i, store=config.store, vet=vet,
                                                      threads=config.threads))
                        for i, t in enumerate(config.tasks)]
                rebuild: Callable[[Any, Episode], Episode] | None = lambda env, ep: episode_from_log(env)  # noqa: E731
            else:
                envs, observation, goal_reward = env_factory(config)
                rebuild = None
            operators = list(envs[0].operators)
            manifest["operators"] = [{"id": op.id, "text": op.text} for op in operators]
            manifest["runs"] = [str(Path(env.rundir.path).relative_to(Path(env.rundir.path).parents[2]))
                                for env in envs if getattr(env, "rundir", None) is not None]
            _write_json(out / "manifest.json", manifest)
            agent = SacGlamAgent(policy, [op.text for op in operators], sac, seed=config.seed)
            shaping = getattr(envs[0], "shaping", 0.1)

            def reward_of(goal: str, achieved: Iterable[str], total: float) -> float:
                return goal_reward(goal, achieved, total, shaping=shaping)

            def on_episode(env: Any, ep: Episode, copies: list[Episode]) -> None:
                if getattr(env, "rundir", None) is not None:
                    log_relabels(env, ep, copies)

            policy.model.train()
            summary = train(agent, envs, sac, lambda s: observation(s, sac.max_chars), reward_of, steps=config.steps,
                            seed=config.seed, metrics=metrics, progress=progress, on_episode=on_episode,
                            rebuild=rebuild)
            policy.model.eval()
            save_policy(policy, out, METHOD)
            from safetensors.torch import save_file

            save_file(agent.critic_state(), str(out / CRITIC_FILE))
        except BaseException:
            manifest["status"] = "failed"
            _write_json(out / "manifest.json", manifest)
            raise
        finally:
            metrics.close()
    manifest.update(status="finished", finished_at=datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
                    train_s=summary["wall_s"], training=summary,
                    update_s_mean=round(summary["update_s"] / max(1, summary["updates"]), 4))
    _write_json(out / "manifest.json", manifest)
    return {"name": config.name, "out_dir": str(out), "method": METHOD, "steps": config.steps, "online_samples": 0,
            "online_mean_reward": None, "eval_before": None, "eval_after": None, "train_s": summary["wall_s"],
            "update_s_mean": manifest["update_s_mean"], "sample_s_mean": None, "training": summary}


# -- serving ---------------------------------------------------------------------------------------
class Refiner:
    """A trained SAC-GLAM refiner: `choose(state, operators)` scores the operators' texts by GLAM on
    `tfcaf.evaluator.refine.observation(state)` and returns the argmax of pi (greedy, the default) or a
    sample from pi (`sample=True`, seeded). Other operator texts than the trained ones are scored too
    (GLAM needs no fixed action set); the Q heads (`q_values`) only know the trained operators."""

    def __init__(self, policy: Any, manifest: dict[str, Any], critic: dict[str, torch.Tensor] | None = None,
                 sample: bool = False, seed: int = 0) -> None:
        r = manifest.get("refiner") or {}
        top, norm, max_chars = r.get("top_layers"), r.get("glam_norm"), r.get("max_chars")
        if not isinstance(top, int) or isinstance(top, bool) or not 1 <= top <= num_layers(policy.model) \
                or norm not in ("sum", "mean") or not isinstance(max_chars, int) or not 1 <= max_chars <= 100000:
            raise UsageError("refiner manifest: 'refiner' needs top_layers (int), glam_norm (sum|mean), max_chars (int).")
        ops = manifest.get("operators")
        if not isinstance(ops, list) or not ops or not all(isinstance(o, dict) and isinstance(o.get("text"), str) for o in ops):
            raise UsageError("refiner manifest: 'operators' must list the trained operators' texts.")
        self.policy, self.manifest, self.top, self.norm, self.max_chars = policy, manifest, top, norm, max_chars
        self.trained_texts = tuple(o["text"] for o in ops)
        self.sample = sample
        self.rng = random.Random(seed)
        self._scorers: dict[tuple[str, ...], GlamScorer] = {}
        self.q: QHeads | None = None
        if critic is not None:
            self.q = QHeads(int(lm_parts(policy.model).config.hidden_size), len(self.trained_texts),
                            int((manifest.get("sac") or {}).get("q_hidden", SacConfig.q_hidden)))
            self.q.load_state_dict({k[2:]: v for k, v in critic.items() if k.startswith("q.")})
            self.q.to(policy.device).eval()

    def _scorer(self, texts: tuple[str, ...]) -> GlamScorer:
        if texts not in self._scorers:
            self._scorers[texts] = GlamScorer(self.policy, texts, self.top, self.norm, cache_size=256)
        return self._scorers[texts]

    @torch.no_grad()
    def probs(self, state: Any, operators: Sequence[Any]) -> torch.Tensor:
        """pi(.|state) over `operators` [A]."""
        from tfcaf.evaluator.refine import observation

        scorer = self._scorer(tuple(op.text for op in operators))
        logits, _ = scorer.score([scorer.prompt_ids(observation(state, self.max_chars))])
        return torch.softmax(logits[0], -1)

    @torch.no_grad()
    def q_values(self, state: Any) -> torch.Tensor:
        """min of the two trained Q heads over the trained operators [A]."""
        from tfcaf.evaluator.refine import observation

        if self.q is None:
            raise UsageError("this refiner was loaded without its critic.")
        scorer = self._scorer(self.trained_texts)
        return self.q(scorer.prompt_hidden([scorer.prompt_ids(observation(state, self.max_chars))])).min(0).values[0]

    def choose(self, state: Any, operators: Sequence[Any]) -> int:
        p = self.probs(state, operators)
        if self.sample:
            return self.rng.choices(range(len(p)), weights=p.tolist())[0]
        return int(p.argmax())


def load_refiner(folder: Path, device: str = "cpu", sample: bool = False, seed: int = 0) -> Refiner:
    """A trained SAC-GLAM refiner from <store>/generators/NAME (manifest method "sac-glam"; the base is
    rebuilt from the manifest and must match its sha256). UsageError (exit 2) for anything else."""
    from tfcaf.generator.tuning.policy import Policy
    from tfcaf.generator.tuning.serve import load_generator, read_manifest

    folder = Path(folder)
    manifest = read_manifest(folder)
    if manifest.get("method") != METHOD:
        raise UsageError(f"{folder.name}: a '{manifest.get('method')}' generator, not a sac-glam refiner "
                         f"(train one with `tfcaf tune --method sac-glam`).")
    critic = None
    if (folder / CRITIC_FILE).is_file():
        from safetensors import SafetensorError
        from safetensors.torch import load_file

        try:
            critic = load_file(str(folder / CRITIC_FILE), device="cpu")
        except (SafetensorError, OSError, ValueError) as err:
            raise UsageError(f"{folder / CRITIC_FILE}: not a readable safetensors file ({err}).") from None
    model, tokenizer, manifest = load_generator(folder, device)
    policy = Policy(model, tokenizer, True, None, device)
    try:
        return Refiner(policy, manifest, critic, sample=sample, seed=seed)
    except (RuntimeError, KeyError) as err:  # critic tensors of the wrong shape
        raise UsageError(f"{folder / CRITIC_FILE}: does not fit this refiner ({str(err).splitlines()[0]}).") from None
