"""The refinement operators (see tfcaf.evaluator.refine for the MDP): their ids and texts, the
deterministic spec edits, seeded starting specs, and the `OperatorRunner` that executes an operator on
top of a GenerateLoop (its LLM caller, its vetting path, its run log), shared by `RefineEnv` and
`tfcaf generate --refiner`.
"""

from __future__ import annotations

import json
import random
from dataclasses import dataclass, field
from typing import Any

@dataclass(frozen=True)
class Operator:
    """One refinement operator: a stable id, the action text a policy scores, the instruction (doc)."""

    id: str
    text: str
    doc: str = ""


OPERATORS: tuple[Operator, ...] = (
    Operator("mask_dead", "mask dead agents",
             "give dead agents zero credit: multiply each agent's weight by its alive flag from the global state"),
    Operator("state_softmax", "add a state-dependent softmax over agents",
             "compute each agent's weight as a softmax over the agents of a score computed from the global state"),
    Operator("sharpen", "sharpen the temperature", "make the credit weights sharper: a lower softmax temperature"),
    Operator("soften", "soften the temperature", "make the credit weights smoother: a higher softmax temperature"),
    Operator("blend_vdn", "blend towards VDN", "blend the credit weights towards equal weights (the plain VDN sum)"),
    Operator("drop_feature", "drop the weakest feature", "remove the least important state feature from the weighting"),
    Operator("add_feature", "add a card feature", "use one more of the task's per-agent features in the weighting"),
    Operator("repair", "repair the reported error", "fix the error the checks reported"),
    Operator("refine", "ask the LLM to refine it", "write an improved answer"),
    Operator("stop", "stop", "keep the current candidate and end the episode"),
)
"""The operators; the tuple order is the action index."""

OPERATOR_INDEX: dict[str, int] = {op.id: i for i, op in enumerate(OPERATORS)}
LLM_OPERATORS = frozenset({"repair", "refine"})
"""Operators answered by the generator backend in every mode (the others are spec edits in spec mode)."""
SPEC_EDITS = frozenset(op.id for op in OPERATORS) - LLM_OPERATORS - {"stop"}
BLEND_STEP = 0.25
SOFTMAX_BLEND = 0.5
EDITOR = {"backend": "spec-edit", "model": "tfcaf.evaluator.refine", "model_sha256": None}
"""The producer logged for deterministic spec edits (no LLM call)."""
SEEDER = {"backend": "spec-seed", "model": "tfcaf.evaluator.refine", "model_sha256": None}
"""The producer logged for seeded starting specs (no LLM call)."""


# -- spec edits (pure) ----------------------------------------------------------------------------
def _full(spec: dict[str, Any], card: Any) -> dict[str, Any]:
    weights = spec.get("weights") or {}
    out = {"weights": {f.name: float(weights.get(f.name, 0.0)) for f in card.features},
           "temperature": float(spec["temperature"]), "vdn_blend": float(spec["vdn_blend"])}
    if card.alive is not None:
        out["mask_dead"] = bool(spec.get("mask_dead", False))
    return out


def canonical(spec: dict[str, Any], card: Any) -> dict[str, Any]:
    """A spec as the parser makes it (every card feature, clamped, rounded), for comparing edits."""
    from tfcaf.generator.spec import parse_spec

    return parse_spec(json.dumps(_full(spec, card)), card).to_json()


def edit_spec(op_id: str, spec: dict[str, Any], card: Any) -> dict[str, Any]:
    """The spec after operator `op_id` (one of SPEC_EDITS); clamped through the spec parser. Deterministic
    and goal-independent; returns an equal spec when the edit does not apply (a no-op).

    >>> from tfcaf.tasks.registry import get_card
    >>> card = get_card("smac_3m")
    >>> s = {"weights": {}, "temperature": 1.0, "vdn_blend": 1.0, "mask_dead": False}
    >>> edit_spec("sharpen", s, card)["temperature"], edit_spec("mask_dead", s, card)["mask_dead"]
    (0.5, True)
    """
    if op_id not in SPEC_EDITS:
        raise ValueError(f"'{op_id}' is not a spec edit (spec edits: {', '.join(sorted(SPEC_EDITS))})")
    s = _full(spec, card)
    w = s["weights"]
    names = [f.name for f in card.features]
    if op_id == "mask_dead" and card.alive is not None:
        s["mask_dead"] = True
    elif op_id == "state_softmax":
        s["vdn_blend"] = min(s["vdn_blend"], SOFTMAX_BLEND)
        if names and not any(v != 0.0 for v in w.values()):
            w[names[0]] = 1.0
    elif op_id == "sharpen":
        s["temperature"] = s["temperature"] / 2.0
    elif op_id == "soften":
        s["temperature"] = s["temperature"] * 2.0
    elif op_id == "blend_vdn":
        s["vdn_blend"] = min(1.0, s["vdn_blend"] + BLEND_STEP)
    elif op_id == "drop_feature":
        used = [n for n in names if w[n] != 0.0]
        if used:
            w[min(used, key=lambda n: (abs(w[n]), names.index(n)))] = 0.0
    elif op_id == "add_feature":
        unused = [n for n in names if w[n] == 0.0]
        if unused:
            w[unused[0]] = 1.0
    return canonical(s, card)


def seeded_spec(card: Any, seed: int) -> dict[str, Any]:
    """A starting spec drawn from `seed` (mostly sparse weights; VDN-like, sharp or masked ones included),
    so episodes start from varied candidates without an LLM call."""
    rng = random.Random(seed)
    weights = {f.name: (0.0 if rng.random() < 0.7 else round(rng.uniform(-2.0, 2.0), 2)) for f in card.features}
    spec = {"weights": weights, "temperature": rng.choice([0.25, 0.5, 1.0, 2.0, 4.0]),
            "vdn_blend": rng.choice([0.0, 0.25, 0.5, 0.75, 1.0])}
    if card.alive is not None:
        spec["mask_dead"] = rng.random() < 0.25
    return canonical(spec, card)


# -- executing operators (shared by RefineEnv and `generate --refiner`) ----------------------------
@dataclass
class Current:
    """What the next operator acts on: the candidate, the conversation whose answer it is and that
    conversation's render info (for repair prompts and the dataset's re-rendering)."""

    cand: Any
    """A tfcaf.generator.loop.Candidate."""
    messages: list[dict[str, str]]
    answer: str
    render: dict[str, Any] = field(default_factory=dict)
    """{"fn", "args"} of the conversation's first messages."""


def candidate_text(cand: Any, mode: str) -> str:
    """The state's candidate text: the spec JSON (without notes) in spec mode, else the source."""
    if mode == "spec" and cand.spec is not None:
        return json.dumps({k: v for k, v in cand.spec.items() if k != "notes"})
    return cand.source or cand.answer


def summary_of(verdict: dict[str, Any]) -> str:
    """One-line verdict summary: verdict (status, stage) and the first reason (clipped)."""
    from tfcaf.verdict import Verdict

    try:
        return Verdict.from_json(verdict).summary()[:300]
    except (KeyError, TypeError, ValueError):
        return str(verdict.get("verdict") or "unknown")[:40]


@dataclass
class Outcome:
    """What applying one operator did."""

    current: Current | None
    """The new current candidate, or None for a no-op / stop (the current one stays)."""
    llm_calls: int = 0
    vet_calls: int = 0
    noop: str | None = None
    """Why nothing was vetted (None when a candidate was vetted)."""


class OperatorRunner:
    """Executes operators on top of a GenerateLoop (its LLM caller, its vetting path, its run log).

    `has_llm` False: repair/refine (and code-mode edits) are no-ops."""

    def __init__(self, loop: Any, has_llm: bool = True) -> None:
        self.loop, self.has_llm = loop, has_llm
        self.card, self.mode = loop.card, loop.mode

    def _vet(self, cid: str, where: tuple[int, int, int], answer: str, messages: list[dict[str, str]],
             render: dict[str, Any], first: int, extra: dict[str, Any]) -> Current:
        request = {"exchanges": [self.loop.llm.last_exchange], "prompt": self.loop.rundir.save_prompt(messages),
                   "goal": list(self.loop.goals), "render": {**render, "first_messages": first}}
        cand = self.loop.vet_answer(cid, *where, answer, request, extra=extra)
        if cand.accepted and self.loop.fitness is not None:
            self.loop._score(cand)  # short-training fitness + re-grade (goals fitness_ge:<x>)
        return Current(cand, messages, answer, render)

    def start(self, cid: str, where: tuple[int, int, int], seed: int, seeded: bool, extra: dict[str, Any]) -> Outcome:
        """The first candidate of an episode: a seeded spec (no LLM call) or the generator's first answer."""
        from tfcaf.generator import prompting
        from tfcaf.generator.backends import Completion

        render = {"fn": "generate", "args": {"mode": self.mode}}
        messages = prompting.rerender(render, self.card, self.loop.goals)
        if seeded:
            answer = json.dumps(seeded_spec(self.card, seed))
            self.loop.llm.record("generate", messages, {"seed": seed},
                                 Completion(answer, 0, 0, 0.0, SEEDER["model"]), SEEDER)
            calls = 0
        else:
            answer = self.loop.llm.ask("generate", messages, self.loop._sampling("refine-start", cid)).text
            calls = 1
        return Outcome(self._vet(cid, where, answer, messages, render, len(messages), extra), calls, 1)

    def apply(self, op: Operator, current: Current, cid: str, where: tuple[int, int, int],
              extra: dict[str, Any]) -> Outcome:
        from tfcaf.generator import prompting
        from tfcaf.generator.backends import Completion

        cand = current.cand
        text = candidate_text(cand, self.mode)
        if op.id == "stop":
            return Outcome(None, noop="stop")
        if op.id in SPEC_EDITS and self.mode == "spec":
            if cand.spec is None:
                return Outcome(None, noop="no spec to edit")
            old = canonical(cand.spec, self.card)
            new = edit_spec(op.id, old, self.card)
            if new == old:
                return Outcome(None, noop="edit changes nothing")
            render = {"fn": "refine_op", "args": {"mode": self.mode, "current": text, "instruction": op.doc}}
            messages = prompting.rerender(render, self.card, self.loop.goals)
            answer = json.dumps(new)
            self.loop.llm.record("refine_op", messages, {"operator": op.id},
                                 Completion(answer, 0, 0, 0.0, EDITOR["model"]), EDITOR)
            return Outcome(self._vet(cid, where, answer, messages, render, len(messages), extra), 0, 1)
        if not self.has_llm:
            return Outcome(None, noop="no LLM backend")
        sampling = self.loop._sampling("refine", cid)
        if op.id == "repair":
            if cand.accepted:
                return Outcome(None, noop="nothing to repair (accepted)")
            messages = prompting.repair_messages(current.messages, current.answer, cand.verdict, self.mode)
            render = current.render  # the conversation's first messages stay those of its first request
            first = len(prompting.rerender(render, self.card, self.loop.goals))
        elif op.id == "refine":
            render = {"fn": "refine", "args": {"mode": self.mode, "best_answer": text, "advice": None,
                                               "score": (cand.reward or {}).get("total")}}
            messages = prompting.rerender(render, self.card, self.loop.goals)
            first = len(messages)
        else:  # a code-mode edit: the operator's instruction, answered by the generator
            render = {"fn": "refine_op", "args": {"mode": self.mode, "current": text, "instruction": op.doc}}
            messages = prompting.rerender(render, self.card, self.loop.goals)
            first = len(messages)
        answer = self.loop.llm.ask("repair" if op.id == "repair" else "refine", messages, sampling).text
        return Outcome(self._vet(cid, where, answer, messages, render, first, extra), 1, 1)


