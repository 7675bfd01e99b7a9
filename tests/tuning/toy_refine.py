"""A toy refinement MDP with the shape of `tfcaf.evaluator.refine.RefineEnv` (states with the RefineState
fields, reset/step, an observation ending with "Action:", a goal_reward), and no vetting: the candidate is
a set of flags, operator i sets flag i, "clear flags" clears them, "stop" ends the episode.

Goals: "flag_x" (flag x set) and "flags_xy" (both set: two steps). A uniform-random policy reaches a
one-flag goal with horizon 2 in ~28% of episodes; the optimum is 100%.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, replace
from typing import Iterable

FLAGS = ("a", "b", "c")
TEXTS = ("set flag a", "set flag b", "set flag c", "clear the flags", "keep the flags", "stop")


@dataclass(frozen=True)
class ToyState:
    task: str
    goal: str
    mode: str
    step: int
    candidate: str
    summary: str
    achieved: tuple[str, ...]
    reward_total: float
    done: bool = False


@dataclass(frozen=True)
class ToyOperator:
    id: str
    text: str
    doc: str = ""


OPERATORS = tuple(ToyOperator(t.replace(" ", "_"), t) for t in TEXTS)


def achieved_of(flags: str) -> tuple[str, ...]:
    out = [f"flag_{f}" for f in flags]
    out += [f"flags_{x}{y}" for i, x in enumerate(FLAGS) for y in FLAGS[i + 1:] if x in flags and y in flags]
    return tuple(sorted(out))


def goal_reward(goal: str, achieved: Iterable[str], reward_total: float, *, shaping: float = 0.1) -> float:
    return (1.0 if goal in set(achieved) else 0.0) + shaping * reward_total


def observation(state: ToyState, max_chars: int = 1500) -> str:
    """Like refine.observation, except that it ends with the goal instead of "Action:"."""
    # the goal comes last: a randomly initialised tiny Llama blurs tokens a few positions back (measured:
    # with "...Goal: flag a.\nAction:" even supervised LoRA could not tell goal a from goal c)
    return (f"Task: {state.task}. Step {state.step}.\nCandidate: flags [{state.candidate[:max_chars]}].\n"
            f"Achieved: {', '.join(state.achieved) or 'none'}.\nGoal: {state.goal.replace('_', ' ')}")


class ToyRefineEnv:
    operators = OPERATORS

    def __init__(self, task: str = "toy", *, horizon: int = 2, goals: tuple[str, ...] = ("flag_a", "flag_b", "flag_c"),
                 seed: int = 0, shaping: float = 0.1) -> None:
        self.task, self.horizon, self.goals, self.shaping = task, horizon, tuple(goals), shaping
        self.rng = random.Random(seed)
        self.state: ToyState | None = None

    def reset(self, goal: str | None = None, *, seed: int | None = None) -> ToyState:
        if seed is not None:
            self.rng = random.Random(seed)
        goal = goal or self.rng.choice(self.goals)
        self.state = ToyState(self.task, goal, "spec", 0, "", "start", (), 0.0)
        return self.state

    def step(self, action: int):
        s = self.state
        assert s is not None and not s.done
        op = OPERATORS[action].id
        flags = s.candidate
        if op.startswith("set_flag_"):
            flags = "".join(sorted(set(flags) | {op[-1]}))
        elif op == "clear_the_flags":
            flags = ""
        ach = achieved_of(flags)
        total = len(flags) / len(FLAGS)
        reached = s.goal in ach
        done = reached or op == "stop" or s.step + 1 >= self.horizon
        self.state = replace(s, step=s.step + 1, candidate=flags, summary=f"{len(flags)} flags", achieved=ach,
                             reward_total=total, done=done)
        r = goal_reward(s.goal, ach, total, shaping=self.shaping)
        return self.state, r, done, {"operator": op, "achieved": list(ach), "reward_total": total, "status": "toy",
                                     "llm_calls": 0, "vet_calls": 0,
                                     "truncated": done and not reached and op != "stop"}

    def close(self) -> None:
        pass
