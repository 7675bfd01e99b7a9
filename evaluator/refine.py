"""The refinement MDP (issue 10, the environment of SAC-GLAM): improve one candidate step by step.

State (`RefineState`): the task, ONE goal id of `tfcaf.evaluator.goals`, the mode, the step, the
current candidate (spec JSON or code), its one-line verdict, the goals it achieves and its tiered
reward. Actions: the textual operators `OPERATORS` (index = action):

==============  ==========================================  =====================================================
id              text (what the policy scores)               spec mode (deterministic edit, then vetted)
==============  ==========================================  =====================================================
mask_dead       mask dead agents                            mask_dead = true (no-op on tasks without alive flag)
state_softmax   add a state-dependent softmax over agents   vdn_blend = min(vdn_blend, 0.5); weight 1 on the
                                                            first card feature when no weight is nonzero
sharpen         sharpen the temperature                     temperature / 2 (clamped to spec.LIMITS)
soften          soften the temperature                      temperature * 2 (clamped)
blend_vdn       blend towards VDN                           vdn_blend + 0.25 (clamped to 1)
drop_feature    drop the weakest feature                    zero the smallest nonzero |weight| (card order on ties)
add_feature     add a card feature                          weight 1 on the first card feature whose weight is 0
repair          repair the reported error                   the loop's repair prompt (LLM); no-op when accepted
refine          ask the LLM to refine it                    the loop's refine prompt (LLM)
stop            stop                                        ends the episode
==============  ==========================================  =====================================================

In code mode every edit operator is a request to the generator backend (`prompts/refine_op.j2`: the
current code and the operator's instruction, `Operator.doc`); repair/refine are the loop's own prompts.
An edit that leaves the spec unchanged (mask_dead twice, add_feature with every feature used) is a
no-op step: nothing is vetted, the step still counts. Every other step's answer is vetted through the
generate loop's own path (`GenerateLoop.vet_answer`: spec parse + clamp + render, the vetter,
micro-tasks, tiered reward, goals) and written as a candidate event; spec edits are logged as exchanges
of the producer `spec-edit` (their prompt is refine_op.j2, their answer the edited spec), so
`tfcaf dataset build` turns every step into a row. The dynamics never read the episode's goal (prompts
request the loop's default goals), so hindsight relabelling of a transition stays a valid transition.

Reward (`goal_reward`): 1 when the goal is achieved, plus `shaping * reward_total` of the candidate
after the step (shaping 0.1 by default; 0 gives the sparse reward). An episode ends when the goal is
achieved or on `stop` (terminated), or after `horizon` steps (truncated).

    env = RefineEnv("smac_3m", horizon=4, store=tmp)
    state = env.reset(goal="masks_dead_agents")
    state, reward, done, info = env.step(OPERATOR_INDEX["mask_dead"])
    env.close()
"""

from __future__ import annotations

import contextlib
import random
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Iterable, Protocol, Sequence

from tfcaf.errors import UsageError
from tfcaf.evaluator import goals as goals_mod
from tfcaf.evaluator.refine_ops import (EDITOR, LLM_OPERATORS, OPERATOR_INDEX, OPERATORS, SEEDER, SPEC_EDITS,  # noqa: F401
                                        Current, Operator, OperatorRunner, Outcome, candidate_text, canonical,
                                        edit_spec, seeded_spec, summary_of)


# -- state, observation, reward --------------------------------------------------------------------
@dataclass(frozen=True)
class RefineState:
    """One state of the refinement MDP (see the module docstring). `candidate` and `summary` are
    untrusted text: display them through tfcaf.display."""

    task: str
    goal: str
    mode: str
    step: int
    candidate: str
    summary: str
    achieved: tuple[str, ...]
    reward_total: float
    done: bool = False

    def to_json(self) -> dict[str, Any]:
        return {**asdict(self), "achieved": list(self.achieved)}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> "RefineState":
        return cls(task=str(data["task"]), goal=str(data["goal"]), mode=str(data["mode"]), step=int(data["step"]),
                   candidate=str(data["candidate"]), summary=str(data["summary"]),
                   achieved=tuple(str(g) for g in data.get("achieved") or ()), reward_total=float(data["reward_total"]),
                   done=bool(data.get("done", False)))


def _goal_line(goal: str) -> str:
    try:
        text = goals_mod.describe(goal)
    except ValueError:
        text = "(unknown goal)"
    return f"Goal: {text} [{goal}]"


def observation(state: RefineState, max_chars: int = 1500) -> str:
    """The policy's prompt text: goal, task, candidate (clipped to `max_chars`), verdict, achieved goals,
    ending with "Action:". Deterministic; the goal appears only on the first line, so re-rendering with
    another goal (hindsight relabelling) changes only that line. Untrusted text is shown inert
    (control characters as escapes)."""
    from tfcaf.display import inert
    from tfcaf.prompts import clip

    candidate = inert(clip(state.candidate.strip(), max_chars), keep_newlines=True)
    lines = [
        _goal_line(state.goal),
        f"Task: {state.task} (mode {state.mode}, step {state.step})",
        "Candidate:",
        candidate,
        f"Verdict: {inert(clip(state.summary, 300))}",
        f"Tiered reward: {state.reward_total:.3f}",
        f"Achieved goals: {', '.join(state.achieved) if state.achieved else 'none'}",
        "Action:",
    ]
    return "\n".join(lines)


def goal_reward(goal: str, achieved: Iterable[str], reward_total: float, *, shaping: float = 0.1) -> float:
    """1.0 if `goal` is in `achieved` else 0.0, plus `shaping * reward_total` (the candidate's tiered
    reward in [0, 1]; shaping=0 gives the sparse reward). The one formula: the env uses it and hindsight
    relabelling recomputes relabelled rewards with it.

    >>> goal_reward("not_vdn", ["finite", "not_vdn"], 0.8)
    1.08
    """
    return round((1.0 if goal in set(achieved) else 0.0) + shaping * float(reward_total), 6)


# -- policies --------------------------------------------------------------------------------------
class Policy(Protocol):
    def choose(self, state: RefineState, operators: Sequence[Operator]) -> int: ...


class RandomPolicy:
    """Uniform over the operators (seeded)."""

    def __init__(self, seed: int = 0) -> None:
        self.rng = random.Random(seed)

    def choose(self, state: RefineState, operators: Sequence[Operator]) -> int:
        return self.rng.randrange(len(operators))


class PlainPolicy:
    """What the plain loop does: "repair" when the candidate was rejected, else "refine"."""

    def choose(self, state: RefineState, operators: Sequence[Operator]) -> int:
        ids = [op.id for op in operators]
        return ids.index("refine" if "finite" in state.achieved else "repair")


BUILTIN_POLICIES = ("random", "plain")


def load_policy(name: str, store: Path, seed: int = 0, device: str = "cpu") -> Policy:
    """`random` / `plain` (built-in baselines) or a trained refiner `<store>/generators/NAME` (loaded by
    `tfcaf.generator.tuning.sacglam.load_refiner`). UsageError (exit 2) for an unknown name."""
    if name == "random":
        return RandomPolicy(seed)
    if name == "plain":
        return PlainPolicy()
    import re

    if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}", name or ""):
        raise UsageError(f"--refiner: '{name}' is not a refiner name (random, plain, or a name from `tfcaf generators`).")
    folder = Path(store) / "generators" / name
    if not folder.is_dir():
        raise UsageError(f"--refiner: no refiner '{name}' in {Path(store) / 'generators'}; train one with "
                         f"`tfcaf tune --method sac-glam --name {name}` or use --refiner random.")
    try:
        from tfcaf.generator.tuning.sacglam import load_refiner
    except ImportError as err:
        raise UsageError(f"--refiner {name}: this install has no SAC-GLAM refiner loader ({err}).") from None
    return load_refiner(folder, device=device)


def state_of(current: Current, task: str, goal: str, mode: str, step: int, done: bool = False) -> RefineState:
    cand = current.cand
    return RefineState(task=task, goal=goal, mode=mode, step=step, candidate=candidate_text(cand, mode),
                       summary=summary_of(cand.verdict), achieved=tuple(cand.achieved),
                       reward_total=float((cand.reward or {}).get("total", 0.0)), done=done)



def read_episodes(rundir: Any) -> list[dict[str, Any]]:
    """The episodes of a refinement run's log (a tfcaf.rundir.RunDir), for a replay buffer:
    [{"episode", "goal", "start": RefineState, "steps": [{"state", "action", "operator", "reward",
    "next_state", "achieved", "done", "terminated", "truncated"}]}], states rebuilt with
    RefineState.from_json. Malformed events (the log is store data) are skipped."""
    out: dict[int, dict[str, Any]] = {}
    for e in rundir.load_events():
        try:
            if e["type"] == "refine_episode":
                out[int(e["episode"])] = {"episode": int(e["episode"]), "goal": str(e["goal"]),
                                          "start": RefineState.from_json(e["state"]), "steps": []}
            elif e["type"] == "refine_step" and int(e["episode"]) in out:
                out[int(e["episode"])]["steps"].append({
                    "state": RefineState.from_json(e["state"]), "action": int(e["action"]), "operator": str(e["operator"]),
                    "reward": float(e["reward"]), "next_state": RefineState.from_json(e["next_state"]),
                    "achieved": [str(g) for g in e.get("achieved") or []], "done": bool(e["done"]),
                    "terminated": bool(e.get("terminated")), "truncated": bool(e.get("truncated"))})
        except (KeyError, TypeError, ValueError):
            continue
    return [out[k] for k in sorted(out)]


# -- the environment -------------------------------------------------------------------------------
def refine_goals(card: Any, mode: str = "spec") -> list[str]:
    """The goals episodes draw from by default: the loop's default goals (without the ones every spec
    meets: finite, batch_independent, igm_monotone) plus `uses_feature:<f>` for every card feature."""
    base = goals_mod.default_goals(card)
    if mode == "spec":
        base = [g for g in base if g not in ("finite", "batch_independent", "igm_monotone")]
    return base + [f"uses_feature:{f.name}" for f in card.features]


class _NoLLM:
    """Stands in for a backend in spec mode without one: LLM operators become no-ops."""

    name = "none"
    model = "none"

    def complete(self, messages: Any, **sampling: Any) -> Any:
        raise UsageError("this refinement operator needs an LLM backend (RefineEnv(backend=...)).")

    def close(self) -> None:
        pass


class RefineEnv:
    """The refinement MDP on one task (module docstring). One run directory per env under
    `<store>/runs/<task>/refine-<time>-<hex>/`: candidate events for every vetted step (dataset rows),
    `refine_episode` / `refine_step` / `refine_finished` events for the replay buffer.

    Extra keyword arguments beyond the shared interface: `vet` (a vet(text, card) function; default the
    real vetter), `start` ("seeded": a seeded starting spec, no LLM call; "llm": the generator's first
    answer; code mode is always "llm"), `fitness_steps` (short-training fitness of accepted candidates,
    0 = off), `threads`, `cache` (serve a request identical to an earlier one, same messages and seed, from
    `<store>/cache/llm`; `llm_calls` still counts it: it counts the requests a policy makes)."""

    operators: tuple[Operator, ...] = OPERATORS

    def __init__(self, task: str, *, mode: str = "spec", horizon: int = 4, goals: Sequence[str] | None = None,
                 seed: int = 0, backend: Any = None, store: Any = None, shaping: float = 0.1, vet: Any = None,
                 start: str = "seeded", fitness_steps: int = 0, threads: int = 1, cache: bool = False) -> None:
        from tfcaf.generator.config import GenerateConfig
        from tfcaf.generator.loop import GenerateLoop
        from tfcaf.generator.session import create_run, default_vetter, fitness_hook, real_states
        from tfcaf.generator.backends import identity
        from tfcaf.store import store_dir
        from tfcaf.tasks.registry import get_card

        if mode not in ("spec", "code"):
            raise UsageError(f"mode must be spec or code, got '{mode}'.")
        if mode == "code" and backend is None:
            raise UsageError("code mode needs a generator backend (RefineEnv(..., backend=...)).")
        if not 1 <= int(horizon) <= 64:
            raise UsageError(f"horizon must be between 1 and 64, got {horizon}.")
        if start not in ("seeded", "llm") or (start == "llm" and backend is None):
            raise UsageError("start must be 'seeded' or 'llm' (llm needs a backend).")
        self.card = get_card(task)
        self.task, self.mode, self.horizon, self.seed, self.shaping = task, mode, int(horizon), int(seed), float(shaping)
        self.start_kind = "llm" if mode == "code" else start
        self.goals = list(goals) if goals else refine_goals(self.card, mode)
        for g in self.goals:
            try:
                goals_mod.parse_goal(g)
            except ValueError as err:
                raise UsageError(f"goals: {err}.") from None
        self.store = store_dir(store)
        self._stack = contextlib.ExitStack()
        llm = backend if backend is not None else _NoLLM()
        config = GenerateConfig(task=task, backend=getattr(llm, "name", "local"), mode=mode, judge=False, cache=bool(cache),
                                seed=self.seed, fitness_steps=int(fitness_steps), threads=int(threads), rounds=1, k=1)
        model = identity(llm)
        self.rundir = create_run(config, {}, self.store, self.card, model, prefix="refine-")
        try:
            if vet is None:
                vet = self._stack.enter_context(default_vetter(int(threads), self.store))
            from tfcaf.generator.rundir import ResponseCache

            self.loop = GenerateLoop(config, self.card, llm, vet, self.rundir,
                                     cache=ResponseCache(self.store / "cache" / "llm") if cache else None,
                                     fitness=fitness_hook(int(fitness_steps)), states=real_states(task, self.store))
        except BaseException:
            self._stack.close()
            raise
        self.runner = OperatorRunner(self.loop, has_llm=backend is not None)
        self.episode = -1
        self.llm_calls = 0
        self.vet_calls = 0
        self.state: RefineState | None = None
        self._current: Current | None = None
        self.rundir.append({"type": "refine_started", "task": task, "mode": mode, "horizon": self.horizon,
                            "goals": self.goals, "seed": self.seed, "shaping": self.shaping, "start": self.start_kind,
                            "operators": [asdict(op) for op in OPERATORS], "prompt_goals": list(self.loop.goals)})

    @property
    def current(self) -> Any:
        """The current candidate (a tfcaf.generator.loop.Candidate: verdict, graph, reward, achieved)."""
        return None if self._current is None else self._current.cand

    def _where(self, step: int) -> tuple[int, int, int]:
        return (self.episode, 0, step)

    def _extra(self, step: int, op: str | None) -> dict[str, Any]:
        return {"refine": {"episode": self.episode, "step": step, "operator": op}}

    def reset(self, goal: str | None = None, *, seed: int | None = None) -> RefineState:
        """A fresh first candidate and a goal (given, or drawn from `goals` among the ones the first
        candidate does not achieve yet)."""
        from tfcaf.generator.loop import _seed

        if goal is not None:
            try:
                goals_mod.parse_goal(goal)
            except ValueError as err:
                raise UsageError(f"goal: {err}.") from None
        self.episode += 1
        ep_seed = int(seed) if seed is not None else _seed(self.seed, "episode", self.episode)
        out = self.runner.start(f"e{self.episode}-s0", self._where(0), ep_seed, self.start_kind == "seeded",
                                self._extra(0, None))
        self.llm_calls += out.llm_calls
        self.vet_calls += out.vet_calls
        assert out.current is not None
        self._current = out.current
        achieved = set(out.current.cand.achieved)
        if goal is None:
            pool = [g for g in self.goals if g not in achieved] or list(self.goals)
            goal = random.Random(ep_seed).choice(pool)
        self.state = state_of(self._current, self.task, goal, self.mode, 0)
        self.rundir.append({"type": "refine_episode", "episode": self.episode, "goal": goal, "seed": ep_seed,
                            "cid": out.current.cand.cid, "state": self.state.to_json(),
                            "llm_calls": out.llm_calls, "vet_calls": out.vet_calls})
        return self.state

    def step(self, action: int) -> tuple[RefineState, float, bool, dict[str, Any]]:
        """Apply OPERATORS[action], vet the result, reward = goal_reward(...); see the module docstring."""
        if self.state is None or self._current is None or self.state.done:
            raise RuntimeError("call reset() before step() (the episode is over or never started)")
        if isinstance(action, bool) or not isinstance(action, int) or not 0 <= action < len(OPERATORS):
            raise ValueError(f"action must be an operator index in [0, {len(OPERATORS)}), got {action!r}")
        op = OPERATORS[action]
        before = self.state
        step = before.step + 1
        out = self.runner.apply(op, self._current, f"e{self.episode}-s{step}", self._where(step), self._extra(step, op.id))
        self.llm_calls += out.llm_calls
        self.vet_calls += out.vet_calls
        status = None
        if out.current is not None:
            status = out.current.cand.verdict.get("status")
            if out.current.cand.verdict.get("verdict") != "error":  # infrastructure: keep the candidate we had
                self._current = out.current
        cand = self._current.cand
        achieved = tuple(cand.achieved)
        total = float((cand.reward or {}).get("total", 0.0))
        reward = goal_reward(before.goal, achieved, total, shaping=self.shaping)
        terminated = before.goal in achieved or op.id == "stop"
        truncated = not terminated and step >= self.horizon
        done = terminated or truncated
        self.state = state_of(self._current, self.task, before.goal, self.mode, step, done)
        info = {"operator": op.id, "achieved": list(achieved), "reward_total": total,
                "status": status or cand.verdict.get("status"), "llm_calls": out.llm_calls, "vet_calls": out.vet_calls,
                "cid": cand.cid, "noop": out.noop, "terminated": terminated, "truncated": truncated}
        self.rundir.append({"type": "refine_step", "episode": self.episode, "step": step, "action": action,
                            "operator": op.id, "goal": before.goal, "state": before.to_json(),
                            "next_state": self.state.to_json(), "reward": reward, "achieved": list(achieved),
                            "reward_total": total, "done": done, "terminated": terminated, "truncated": truncated,
                            "cid": cand.cid, "noop": out.noop, "llm_calls": out.llm_calls, "vet_calls": out.vet_calls})
        return self.state, reward, done, info

    def close(self) -> None:
        """Release the vetter; the run log ends with the totals."""
        if self._stack is None:
            return
        try:
            self.rundir.append({"type": "refine_finished", "episodes": self.episode + 1, "llm_calls": self.llm_calls,
                                "vet_calls": self.vet_calls})
        finally:
            self._stack.close()
            self._stack = None  # type: ignore[assignment]

    def __enter__(self) -> "RefineEnv":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()
