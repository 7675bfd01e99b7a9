"""The judge: the evaluator LLM that scores an accepted candidate per criterion and gives one piece of advice.

(Called "critic" before 0.2; renamed so it cannot be confused with an RL critic. `--critic` remains a
deprecated alias of `--judge` for one release.)

The answer is parsed against `CRITIQUE_SCHEMA` (also sent as a decoding constraint): integer scores
1-10 for every criterion in `CRITERIA` and one short advice string. A malformed answer is retried once
(with another seed), then ignored with a logged reason: it never crashes a run.

Text inside a candidate never changes anything: the evaluator sees the candidate *sanitised* (comments
dropped, docstrings removed, every string constant replaced by '<str>', re-printed by `ast.unparse`),
so "approved" or "ignore previous instructions" written in a comment or a string never reaches it.
(Identifiers do reach it; and the judge only ranks candidates that already passed every gate — it can
neither accept a rejected one nor approve anything.)
"""

from __future__ import annotations

import ast
import json
import re
from dataclasses import dataclass
from typing import Any, Callable

from tfcaf.prompts import clip, render
from tfcaf.tasks.card import TaskCard

CRITERIA: dict[str, str] = {
    "credit_logic": "does the weighting give more credit to agents that matter more for the team reward?",
    "state_use": "does it use the relevant parts of the global state correctly (right columns, dead agents)?",
    "robustness": "is it numerically safe (bounded weights, no division by zero, monotone in each Q value)?",
    "simplicity": "is it simple and readable?",
}
"""Criterion -> what it asks (shown to the evaluator)."""

ADVICE_MAX = 150

CRITIQUE_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "scores": {"type": "object", "properties": {c: {"type": "integer", "enum": list(range(1, 11))} for c in CRITERIA},
                   "required": list(CRITERIA), "additionalProperties": False},
        "advice": {"type": "string", "maxLength": ADVICE_MAX},
    },
    "required": ["scores", "advice"],
    "additionalProperties": False,
}

_FENCE = re.compile(r"```(?:json)?[ \t]*\n(.*?)```", re.DOTALL)


class CritiqueError(ValueError):
    """The evaluator's answer does not follow the schema."""


@dataclass(frozen=True)
class Critique:
    """A parsed evaluator answer."""

    scores: dict[str, int]
    """Criterion -> score in 1..10."""
    advice: str
    """One short piece of advice (at most ADVICE_MAX characters, control characters removed)."""

    @property
    def mean(self) -> float:
        """Mean score mapped to [0, 1]."""
        return (sum(self.scores.values()) / len(self.scores) - 1.0) / 9.0

    def to_json(self) -> dict[str, Any]:
        return {"scores": dict(self.scores), "advice": self.advice, "mean": round(self.mean, 4)}


@dataclass(frozen=True)
class JudgeResult:
    """What one critique cost and gave: a Critique, or None with the reason it was ignored."""

    critique: Critique | None
    reason: str
    attempts: int


def sanitize_candidate(source: str) -> str:
    """The candidate as the evaluator sees it: no comments, no docstrings, strings replaced by '<str>'."""
    try:
        tree = ast.parse(source)
    except (SyntaxError, ValueError):
        return "<source that does not parse>"

    class _Strip(ast.NodeTransformer):
        def visit_Constant(self, node: ast.Constant) -> ast.AST:
            if isinstance(node.value, (str, bytes)):
                return ast.copy_location(ast.Constant("<str>"), node)
            return node

        def visit_JoinedStr(self, node: ast.JoinedStr) -> ast.AST:
            return ast.copy_location(ast.Constant("<str>"), node)

    for node in ast.walk(tree):
        body = getattr(node, "body", None)
        if isinstance(body, list) and body and isinstance(body[0], ast.Expr) \
                and isinstance(getattr(body[0], "value", None), ast.Constant) and isinstance(body[0].value.value, str):
            node.body = body[1:] or [ast.Pass()]  # type: ignore[attr-defined]
    tree = ast.fix_missing_locations(_Strip().visit(tree))
    return ast.unparse(tree)


def parse_critique(text: str) -> Critique:
    """Parse an evaluator answer strictly against CRITIQUE_SCHEMA; raises CritiqueError."""
    stripped = text.strip()
    fences = _FENCE.findall(stripped)
    if len(fences) == 1:
        stripped = fences[0].strip()
    try:
        data = json.loads(stripped)
    except json.JSONDecodeError as err:
        raise CritiqueError(f"not JSON ({err.msg})") from None
    if not isinstance(data, dict) or not isinstance(data.get("scores"), dict) or not isinstance(data.get("advice"), str):
        raise CritiqueError("expected an object with 'scores' (object) and 'advice' (string)")
    scores: dict[str, int] = {}
    for name in CRITERIA:
        value = data["scores"].get(name)
        if isinstance(value, bool) or not isinstance(value, (int, float)) or value != int(value):
            raise CritiqueError(f"score '{name}' missing or not an integer")
        if not 1 <= int(value) <= 10:
            raise CritiqueError(f"score '{name}' = {value} outside 1..10")
        scores[name] = int(value)
    advice = "".join(ch for ch in data["advice"] if ch.isprintable()).strip()[:ADVICE_MAX]
    if len(re.findall(r"[A-Za-z]{2,}", advice)) < 2:
        raise CritiqueError("the advice is not a sentence")
    return Critique(scores, advice)


def numeric_metrics(metrics: dict[str, Any]) -> dict[str, float]:
    """Only the numeric, trusted measurements (from the vetter) are shown to the evaluator."""
    out = {}
    for key, value in (metrics or {}).items():
        if isinstance(value, (int, float)) and not isinstance(value, bool) and re.fullmatch(r"[a-z0-9_]{1,40}", key):
            out[key] = round(float(value), 4)
    return out


Ask = Callable[[list, dict], Any]
"""ask(messages, sampling) -> Completion (the loop's cached, logged LLM call)."""


JUDGE_SYSTEM = ("You are a strict reviewer of multi-agent credit assignment functions. "
                "You answer with one JSON object only.")


def evaluate_messages(card: TaskCard, candidate: str, metrics: dict[str, Any], criteria: dict[str, str],
                      kind: str = "source") -> list[dict[str, str]]:
    """The judge's request, rendered from prompts/evaluate.j2. `candidate` must already be sanitised:
    python source (`kind='source'`) or a parsed, clamped credit spec re-serialised by us (`kind='spec'`)."""
    body = render("evaluate.j2", card=card, detailed=False, kind=kind, candidate=candidate.strip(),
                  metrics=clip(json.dumps(metrics, sort_keys=True, default=str), 600), criteria=criteria)
    return [{"role": "system", "content": JUDGE_SYSTEM}, {"role": "user", "content": body}]


def critique(ask: Ask, card: TaskCard, source: str, metrics: dict[str, Any], seed: int,
             max_tokens: int = 220, temperature: float = 0.3, spec: dict[str, Any] | None = None) -> JudgeResult:
    """Ask the evaluator about one accepted candidate; malformed -> one retry -> ignored with the reason.

    With `spec` (spec mode: the parsed, clamped spec — our own data, not LLM text) the evaluator sees
    the spec instead of the much longer rendered source."""
    if spec is not None:
        shown = json.dumps({k: spec[k] for k in ("weights", "temperature", "vdn_blend", "mask_dead") if k in spec})
        messages = evaluate_messages(card, shown, numeric_metrics(metrics), CRITERIA, kind="spec")
    else:
        messages = evaluate_messages(card, sanitize_candidate(source), numeric_metrics(metrics), CRITERIA)
    reason = ""
    for attempt in range(2):
        sampling = {"temperature": temperature, "max_tokens": max_tokens, "seed": seed + attempt,
                    "json_schema": CRITIQUE_SCHEMA}
        answer = ask(messages, sampling)
        try:
            return JudgeResult(parse_critique(answer.text), "ok", attempt + 1)
        except CritiqueError as err:
            reason = f"malformed evaluator answer ({err})"
    return JudgeResult(None, f"{reason}; ignored after a retry", 2)
