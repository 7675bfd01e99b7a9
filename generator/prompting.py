"""Rendering prompts from the Jinja templates in `tfcaf.prompts` (`prompts/*.j2`).

Templates are rendered with `StrictUndefined`, so a missing variable is an error, never an empty
string. LLM text (a previous answer, a reviewer's advice) only ever enters a template as a variable:
nothing an LLM writes is rendered *as* a template.

    messages = generate_messages(get_card("matrix_climbing"), mode="code")
    # [{"role": "system", ...}, {"role": "user", ...}]
"""

from __future__ import annotations

import json
from functools import lru_cache
from typing import Any

import jinja2

from tfcaf.contract import ENTRY_POINT
from tfcaf.generator.backends import Message
from tfcaf.tasks.card import TaskCard

MODES = ("code", "spec")


@lru_cache(maxsize=1)
def environment() -> jinja2.Environment:
    """The Jinja environment over the packaged templates (StrictUndefined, no autoescape: plain text)."""
    return jinja2.Environment(
        loader=jinja2.PackageLoader("tfcaf.prompts", "."),
        undefined=jinja2.StrictUndefined,
        autoescape=False,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=False,
    )


def render(name: str, **variables: Any) -> str:
    """Render template `name` (e.g. 'generate.j2'); raises jinja2.UndefinedError on a missing variable."""
    return environment().get_template(name).render(entry_point=ENTRY_POINT, **variables).strip() + "\n"


def _check_mode(mode: str) -> None:
    if mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}, got {mode!r}")


def _task_vars(card: TaskCard, mode: str) -> dict[str, Any]:
    from tfcaf.generator import spec as spec_mod

    out: dict[str, Any] = {"card": card, "mode": mode, "detailed": mode == "code"}
    if mode == "spec":
        out["limits"] = spec_mod.LIMITS
    return out


def system_message(mode: str) -> Message:
    _check_mode(mode)
    return {"role": "system", "content": render("system.j2", mode=mode)}


def generate_messages(card: TaskCard, mode: str) -> list[Message]:
    """The first request of a round: system + the task and what to write."""
    _check_mode(mode)
    body = render("spec.j2" if mode == "spec" else "generate.j2", **_task_vars(card, mode))
    return [system_message(mode), {"role": "user", "content": body}]


def refine_messages(card: TaskCard, mode: str, best_answer: str, advice: str | None, score: float | None) -> list[Message]:
    """A later round's request: the best answer so far (LLM text, as a variable) and the reviewer's advice."""
    _check_mode(mode)
    body = render("refine.j2", best_answer=best_answer.strip(), advice=advice or "", score=score, **_task_vars(card, mode))
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


def evaluate_messages(card: TaskCard, candidate: str, metrics: dict[str, Any], criteria: dict[str, str],
                      kind: str = "source") -> list[Message]:
    """The evaluator's request. `candidate` must already be sanitised (see evaluator.critic): python
    source (`kind='source'`) or a parsed, clamped credit spec re-serialised by us (`kind='spec'`)."""
    body = render("evaluate.j2", card=card, detailed=False, kind=kind, candidate=candidate.strip(),
                  metrics=_clip(json.dumps(metrics, sort_keys=True, default=str), 600), criteria=criteria)
    return [{"role": "system", "content": "You are a strict reviewer of multi-agent credit assignment functions. "
                                          "You answer with one JSON object only."},
            {"role": "user", "content": body}]


def _clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 3] + "..."
