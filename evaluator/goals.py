"""Checkable goals: a small vocabulary, each goal a check on a candidate's verdict and metrics.

A prompt can request goals (the goal block in `prompts/goal.j2`); every candidate gets the list of
goals it `achieved`, which hindsight relabelling uses (a row may only ever ask for an achieved goal).
Checks are conservative: a goal counts as achieved only when the measurements prove it, so "not
measured" is "not achieved".

Goal ids (`GOALS`; parametrised ids are `fitness_ge:<x>` and `uses_feature:<name>`):

- `all_gates`: passed the text gate, the AST allow-list and the restricted load (reward tier 0).
- `contract`: ran with the right output shape, dtype and device (reward tier 1).
- `finite`: accepted (every property batch, production shapes included, gave finite outputs and gradients).
- `igm_monotone`: accepted and the smallest dQ_tot/dQ_i measured was >= -1e-5.
- `batch_independent`: accepted (batch independence is a gate of the property suite).
- `masks_dead_agents`: the task has an alive flag, the candidate was accepted and dead agents get at
  most 5 % of the living agents' credit (micro-task `dead_get_no_credit` >= 0.95, else the vetter's
  `dead_agent_credit` <= 0.05).
- `state_dependent`: accepted and the credit changes with the state (`state_dependence` >= 0.01).
- `not_vdn`: accepted and Q_tot differs from the plain sum (`vdn_distance` >= 0.01).
- `fitness_ge:<x>`: short-training fitness was measured and is >= x.
- `uses_feature:<name>`: accepted, and Q_tot reads a state column that the card's feature `<name>`
  reads (micro-task `state_columns`); in spec mode, the spec's weight for it is nonzero and the
  spec is not plain VDN (vdn_blend < 1).

    >>> from tfcaf.verdict import Verdict
    >>> from tfcaf.tasks.registry import get_card
    >>> v = Verdict("accepted", "ok", "export", ("passed",), metrics={"mono_min_grad": 1.0, "vdn_distance": 0.0})
    >>> achieved(v, get_card("matrix_climbing"))
    ['all_gates', 'batch_independent', 'contract', 'finite', 'igm_monotone']
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, Callable, Mapping

from tfcaf.evaluator.reward import NoReward, gate_tier

IGM_TOLERANCE = 1e-5
DEAD_CREDIT_MAX = 0.05
STATE_DEPENDENCE_MIN = 0.01
VDN_DISTANCE_MIN = 0.01


@dataclass(frozen=True)
class Goal:
    """A registered goal: its id (or id prefix for parametrised goals) and what it asks, in words."""

    id: str
    text: str
    """What a prompt says when it requests the goal ({arg} is the parameter)."""
    check: Callable[[Mapping[str, Any], Any, str | None], bool]
    """check(facts, card, arg) -> achieved."""
    parametrised: bool = False


def _facts(verdict: Any, measures: Mapping[str, Any] | None) -> dict[str, Any]:
    get = verdict.get if isinstance(verdict, Mapping) else (lambda k, d=None: getattr(verdict, k, d))
    metrics = dict(get("metrics") or {})
    metrics.update(dict(measures or {}))
    try:
        tier = gate_tier(verdict)
    except NoReward:
        tier = -2  # infrastructure: nothing is known about the candidate
    return {"tier": tier, "status": get("status"), "metrics": metrics, "spec": metrics.get("spec")}


def _num(metrics: Mapping[str, Any], key: str) -> float | None:
    value = metrics.get(key)
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(float(value)):
        return None
    return float(value)


def _accepted(f: Mapping[str, Any]) -> bool:
    return f["tier"] >= 2


def _igm(f: Mapping[str, Any], card: Any, arg: str | None) -> bool:
    grad = _num(f["metrics"], "mono_min_grad")
    return _accepted(f) and grad is not None and grad >= -IGM_TOLERANCE


def _masks(f: Mapping[str, Any], card: Any, arg: str | None) -> bool:
    if card is None or card.alive is None or not _accepted(f):
        return False
    micro = f["metrics"].get("micro") if isinstance(f["metrics"].get("micro"), Mapping) else {}
    score = _num(micro, "dead_get_no_credit")
    if score is not None:
        return score >= 1.0 - DEAD_CREDIT_MAX
    ratio = _num(f["metrics"], "dead_agent_credit")
    return ratio is not None and ratio <= DEAD_CREDIT_MAX


def _at_least(key: str, floor: float) -> Callable[[Mapping[str, Any], Any, str | None], bool]:
    def check(f: Mapping[str, Any], card: Any, arg: str | None) -> bool:
        value = _num(f["metrics"], key)
        return _accepted(f) and value is not None and value >= floor
    return check


def _fitness_ge(f: Mapping[str, Any], card: Any, arg: str | None) -> bool:
    fitness = _num(f["metrics"], "fitness")
    return fitness is not None and arg is not None and fitness >= float(arg)


@lru_cache(maxsize=256)
def _feature_columns(card: Any, name: str) -> frozenset[int]:
    """The state columns a feature's expression reads (nonzero gradient on card-range states)."""
    import torch

    from tfcaf.states import uniform_states
    from tfcaf.tasks.features import evaluate

    s = uniform_states(card, 64, torch.Generator().manual_seed(4)).requires_grad_(True)
    out = evaluate(card, s, [name])[name]
    if not out.requires_grad:
        return frozenset()
    (grad,) = torch.autograd.grad(out.float().sum(), s, allow_unused=True)
    if grad is None:
        return frozenset()
    return frozenset(int(i) for i in (grad.abs() > 0).any(dim=0).nonzero().reshape(-1).tolist())


def _uses_feature(f: Mapping[str, Any], card: Any, arg: str | None) -> bool:
    if card is None or arg is None or not _accepted(f) or arg not in {x.name for x in card.features}:
        return False
    spec = f["spec"]
    if isinstance(spec, Mapping) and isinstance(spec.get("weights"), Mapping):
        weight = _num(spec["weights"], arg)
        blend = _num(spec, "vdn_blend")
        return weight is not None and abs(weight) > 1e-6 and (blend is None or blend < 1.0)
    used = f["metrics"].get("state_columns")
    if not isinstance(used, (list, tuple)):
        return False
    return bool(_feature_columns(card, arg) & {int(c) for c in used if isinstance(c, int) and not isinstance(c, bool)})


GOALS: dict[str, Goal] = {g.id: g for g in (
    Goal("all_gates", "pass the text gate, the AST allow-list and the restricted load",
         lambda f, c, a: f["tier"] >= 0),
    Goal("contract", "run and return a [B, 1] tensor of the inputs' dtype and device",
         lambda f, c, a: f["tier"] >= 1),
    Goal("finite", "stay finite (outputs and gradients) on every tested state, including extreme Q values",
         lambda f, c, a: _accepted(f)),
    Goal("igm_monotone", "be monotone: Q_tot never decreases when any agents_q[:, i] increases", _igm),
    Goal("batch_independent", "treat every batch row on its own (no mixing across the batch)",
         lambda f, c, a: _accepted(f)),
    Goal("masks_dead_agents", "give dead agents (almost) no credit", _masks),
    Goal("state_dependent", "make each agent's credit depend on the global state",
         _at_least("state_dependence", STATE_DEPENDENCE_MIN)),
    Goal("not_vdn", "differ from the plain sum of the agents' Q values (VDN)",
         _at_least("vdn_distance", VDN_DISTANCE_MIN)),
    Goal("fitness_ge", "reach a short-training fitness of at least {arg}", _fitness_ge, parametrised=True),
    Goal("uses_feature", "use the per-agent feature `{arg}`", _uses_feature, parametrised=True),
)}
"""Goal id (or parametrised prefix) -> Goal."""


def parse_goal(goal: str) -> tuple[Goal, str | None]:
    """(the registered goal, its argument or None); ValueError for an unknown or malformed id."""
    head, sep, arg = str(goal).partition(":")
    spec = GOALS.get(head)
    if spec is None:
        raise ValueError(f"unknown goal '{goal}'; known: {', '.join(sorted(GOALS))}")
    if spec.parametrised != bool(sep) or (sep and not arg):
        form = f"{head}:<value>" if spec.parametrised else head
        raise ValueError(f"goal '{goal}' must be written {form}")
    if head == "fitness_ge":
        try:
            x = float(arg)
        except ValueError:
            raise ValueError(f"goal '{goal}': the threshold must be a number") from None
        if not math.isfinite(x):
            raise ValueError(f"goal '{goal}': the threshold must be finite")
    return spec, (arg if sep else None)


def describe(goal: str) -> str:
    """The goal in words, for a prompt."""
    spec, arg = parse_goal(goal)
    return spec.text.format(arg=arg)


def check(goal: str, verdict: Any, card: Any, measures: Mapping[str, Any] | None = None) -> bool:
    """Did the candidate with this verdict (a Verdict or its JSON) achieve `goal` on `card`?

    `measures` adds measurements made after vetting (micro-task results, `fitness`, `spec`); they are
    merged over the verdict's metrics."""
    spec, arg = parse_goal(goal)
    return bool(spec.check(_facts(verdict, measures), card, arg))


def candidate_goals(card: Any, fitness: float | None = None) -> list[str]:
    """Every concrete goal id that can be checked for a candidate of `card` (features expanded;
    `fitness_ge:<x>` for x in 0.25, 0.5, 0.75 when fitness was measured)."""
    out = [g for g, spec in GOALS.items() if not spec.parametrised]
    if card is None or card.alive is None:
        out.remove("masks_dead_agents")
    if fitness is not None:
        out += [f"fitness_ge:{x:g}" for x in (0.25, 0.5, 0.75)]
    out += [f"uses_feature:{f.name}" for f in (card.features if card is not None else ())]
    return out


def achieved(verdict: Any, card: Any, measures: Mapping[str, Any] | None = None) -> list[str]:
    """The sorted list of goals the candidate achieved."""
    metrics = dict((verdict.get("metrics") if isinstance(verdict, Mapping) else getattr(verdict, "metrics", None)) or {})
    metrics.update(dict(measures or {}))
    fitness = _num(metrics, "fitness")
    return sorted(g for g in candidate_goals(card, fitness) if check(g, verdict, card, measures))


def default_goals(card: Any) -> list[str]:
    """The goals a generate prompt requests when the user names none: what a good credit function for
    the task does beyond passing the gates."""
    out = ["finite", "batch_independent"]
    if card is not None and card.requires_igm:
        out.append("igm_monotone")
    if card is not None and card.alive is not None:
        out.append("masks_dead_agents")
    return out + ["state_dependent", "not_vdn"]
