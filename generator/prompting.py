"""Rendering prompts from the Jinja templates in `tfcaf.prompts` (`prompts/*.j2`).

Templates are rendered with `StrictUndefined`, so a missing variable is an error, never an empty
string. LLM text (a previous answer, a reviewer's advice) only ever enters a template as a variable:
nothing an LLM writes is rendered *as* a template.

    messages = generate_messages(get_card("matrix_climbing"), mode="code")
    # [{"role": "system", ...}, {"role": "user", ...}]
"""

from __future__ import annotations

import json
from typing import Any, Sequence

from tfcaf import prompts as _prompts
from tfcaf.generator.backends import Message
from tfcaf.tasks.card import TaskCard

MODES = ("code", "spec")


environment = _prompts.environment
render = _prompts.render


def _check_mode(mode: str) -> None:
    if mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}, got {mode!r}")


def goal_vars(goals: Sequence[str]) -> list[dict[str, str]]:
    """The goal block's variable: [{"id", "text"}] per requested goal id (ValueError for an unknown id)."""
    from tfcaf.evaluator.goals import describe

    return [{"id": g, "text": describe(g)} for g in goals]


def _task_vars(card: TaskCard, mode: str, goals: Sequence[str] = ()) -> dict[str, Any]:
    from tfcaf.generator import spec as spec_mod

    out: dict[str, Any] = {"card": card, "mode": mode, "detailed": mode == "code", "goals": goal_vars(goals)}
    if mode == "spec":
        out["limits"] = spec_mod.LIMITS
    return out


def system_message(mode: str) -> Message:
    _check_mode(mode)
    return {"role": "system", "content": render("system.j2", mode=mode)}


def generate_messages(card: TaskCard, mode: str, goals: Sequence[str] = ()) -> list[Message]:
    """The first request of a round: system + the task and what to write (+ the goal block when `goals`)."""
    _check_mode(mode)
    body = render("spec.j2" if mode == "spec" else "generate.j2", **_task_vars(card, mode, goals))
    return [system_message(mode), {"role": "user", "content": body}]


def refine_messages(card: TaskCard, mode: str, best_answer: str, advice: str | None, score: float | None,
                    goals: Sequence[str] = ()) -> list[Message]:
    """A later round's request: the best answer so far (LLM text, as a variable) and the judge's advice."""
    _check_mode(mode)
    body = render("refine.j2", best_answer=best_answer.strip(), advice=advice or "", score=score, **_task_vars(card, mode, goals))
    return [system_message(mode), {"role": "user", "content": body}]


def repair_messages(previous: list[Message], answer: str, verdict: dict[str, Any], mode: str) -> list[Message]:
    """Continue a conversation after a rejected answer: its text goes back as the assistant turn and the
    failure (status, stage, reasons, counterexample) is fed back."""
    _check_mode(mode)
    counterexample = verdict.get("counterexample")
    body = render(
        "repair.j2",
        mode=mode,
        status=str(verdict.get("status") or verdict.get("verdict") or "rejected"),
        stage=str(verdict.get("stage") or ""),
        reasons=[_clip(str(r), 600) for r in (verdict.get("reasons") or ["no reason given"])][:5],
        counterexample=_clip(json.dumps(counterexample, default=str), 800) if counterexample else "",
    )
    return [*previous, {"role": "assistant", "content": answer}, {"role": "user", "content": body}]


def refine_op_messages(card: TaskCard, mode: str, current: str, instruction: str, goals: Sequence[str] = ()) -> list[Message]:
    """A refinement operator's request (the refinement MDP, tfcaf.evaluator.refine): the current answer
    (LLM or store text, as a variable) and one change to make (`instruction`, our text)."""
    _check_mode(mode)
    body = render("refine_op.j2", current=current.strip(), instruction=instruction, **_task_vars(card, mode, goals))
    return [system_message(mode), {"role": "user", "content": body}]


_clip = _prompts.clip


RENDERERS = {"generate": generate_messages, "refine": refine_messages, "refine_op": refine_op_messages}
"""How a conversation's first messages were rendered: a candidate event records {"fn", "args"} so the
same request can be re-rendered with other goals (hindsight relabelling)."""


def rerender(render_info: dict[str, Any], card: TaskCard, goals: Sequence[str]) -> list[Message]:
    """The first messages of a recorded request, rendered again from the same template with `goals`."""
    fn = RENDERERS[render_info["fn"]]
    return fn(card, **{**render_info["args"], "goals": list(goals)})
