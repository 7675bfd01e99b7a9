"""Spec mode: the LLM fills in a small JSON credit spec; a Jinja template turns it into `QLLMNetwork`.

A spec names how much each of the task card's per-agent features matters::

    {"weights": {"health": 1.5, "nearest_enemy_distance": -0.5}, "temperature": 0.7,
     "vdn_blend": 0.3, "mask_dead": true}

Every number is clamped to `LIMITS` (llama.cpp's grammar does not enforce numeric bounds: weights of
3.6e6 came back in planning), unknown features are dropped with a note, and a missing field or a
non-finite number makes the answer a rejected candidate with a reason (which the repair prompt feeds
back). The rendered source uses only our text (the card's feature expressions and clamped numbers) and
is vetted like any other candidate.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

import jinja2

from tfcaf.tasks.card import TaskCard

LIMITS = {"weight": (-4.0, 4.0), "temperature": (0.1, 5.0), "vdn_blend": (0.0, 1.0)}
"""Sane ranges every numeric field is clamped to."""

_FENCE = re.compile(r"```(?:json)?[ \t]*\n(.*?)```", re.DOTALL)
_IDENT = re.compile(r"[a-z][a-z0-9_]{0,40}")  # used with fullmatch


class SpecError(ValueError):
    """The answer is not a usable spec; the message is the reason fed back to the LLM."""


@dataclass(frozen=True)
class CreditSpec:
    """A parsed, clamped credit spec."""

    weights: dict[str, float]
    """Feature name -> weight, in the card's feature order; only known features."""
    temperature: float
    vdn_blend: float
    mask_dead: bool
    notes: tuple[str, ...] = field(default_factory=tuple)
    """What parsing changed (clamped values, dropped names)."""

    def to_json(self) -> dict[str, Any]:
        return {"weights": dict(self.weights), "temperature": self.temperature, "vdn_blend": self.vdn_blend,
                "mask_dead": self.mask_dead}


def spec_schema(card: TaskCard) -> dict[str, Any]:
    """The JSON schema of a spec for `card` (a grammar for llama.cpp, `response_format` for OpenAI).
    Weights are an object with one required number per feature, so the grammar bounds its length."""
    names = [f.name for f in card.features]
    props: dict[str, Any] = {
        "weights": {"type": "object", "properties": {n: {"type": "number"} for n in names},
                    "required": names, "additionalProperties": False},
        "temperature": {"type": "number"},
        "vdn_blend": {"type": "number"},
    }
    if card.alive is not None:
        props["mask_dead"] = {"type": "boolean"}
    return {"type": "object", "properties": props, "required": list(props), "additionalProperties": False}


def example_spec(card: TaskCard) -> dict[str, Any]:
    """A valid example answer shown in the prompt (uniform weights: plain VDN)."""
    out: dict[str, Any] = {"weights": {f.name: 0.0 for f in card.features}, "temperature": 1.0, "vdn_blend": 1.0}
    if card.alive is not None:
        out["mask_dead"] = False
    return out


def _json_object(text: str) -> dict[str, Any]:
    stripped = text.strip()
    if not stripped:
        raise SpecError("the answer was empty; answer with one JSON object")
    fences = _FENCE.findall(stripped)
    if len(fences) > 1:
        raise SpecError(f"the answer holds {len(fences)} fenced blocks; answer with exactly one JSON object")
    if fences:
        stripped = fences[0].strip()
    try:
        data = json.loads(stripped)
    except json.JSONDecodeError as err:
        raise SpecError(f"the answer is not valid JSON ({err.msg} at line {err.lineno} column {err.colno})") from None
    if not isinstance(data, dict):
        raise SpecError(f"the answer must be a JSON object, got {type(data).__name__}")
    return data


def _number(value: Any, name: str, lo: float, hi: float, notes: list[str]) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise SpecError(f"'{name}' must be a number, got {json.dumps(value)[:40]}")
    value = float(value)
    if not math.isfinite(value):
        raise SpecError(f"'{name}' must be finite")
    clamped = min(hi, max(lo, value))
    if clamped != value:
        notes.append(f"{name} clamped from {value:g} to {clamped:g}")
    return round(clamped, 6)


def parse_spec(text: str, card: TaskCard) -> CreditSpec:
    """Parse and clamp an LLM answer into a CreditSpec; raises SpecError with the reason."""
    data = _json_object(text)
    notes: list[str] = []
    for key in ("weights", "temperature", "vdn_blend"):
        if key not in data:
            raise SpecError(f"the spec lacks the field '{key}'")
    raw_weights = data["weights"]
    if not isinstance(raw_weights, dict):
        raise SpecError("'weights' must be an object mapping feature names to numbers")
    known = {f.name for f in card.features}
    for name in raw_weights:
        if name not in known:
            notes.append(f"unknown feature '{str(name)[:40]}' dropped")
    weights = {f.name: _number(raw_weights[f.name], f"weights.{f.name}", *LIMITS["weight"], notes)
               for f in card.features if f.name in raw_weights}
    temperature = _number(data["temperature"], "temperature", *LIMITS["temperature"], notes)
    vdn_blend = _number(data["vdn_blend"], "vdn_blend", *LIMITS["vdn_blend"], notes)
    mask_dead = False
    if card.alive is not None and "mask_dead" in data:
        if not isinstance(data["mask_dead"], bool):
            raise SpecError("'mask_dead' must be true or false")
        mask_dead = data["mask_dead"]
    return CreditSpec(weights, temperature, vdn_blend, mask_dead, tuple(notes))


@lru_cache(maxsize=1)
def _template() -> jinja2.Template:
    env = jinja2.Environment(loader=jinja2.PackageLoader("tfcaf.generator", "templates"),
                             undefined=jinja2.StrictUndefined, autoescape=False, trim_blocks=True,
                             lstrip_blocks=True, keep_trailing_newline=True)
    return env.get_template("spec_network.j2")


def _alive_expr(card: TaskCard) -> str:
    assert card.alive is not None
    cols, thr = card.alive.columns, repr(float(card.alive.threshold))
    if list(cols) == list(range(cols[0], cols[0] + len(cols))):
        return f"global_state[:, {cols[0]}:{cols[-1] + 1}] > {thr}"
    return "torch.stack([" + ", ".join(f"global_state[:, {c}]" for c in cols) + f"], dim=1) > {thr}"


def render_spec(spec: CreditSpec, card: TaskCard) -> str:
    """QLLMNetwork source for a spec. Only card text and clamped numbers reach the template."""
    features = []
    for f in card.features:
        weight = spec.weights.get(f.name, 0.0)
        if weight == 0.0:
            continue
        if not _IDENT.fullmatch(f.name):
            raise ValueError(f"card {card.name}: feature name {f.name!r} is not an identifier")
        low, high = float(f.low), float(f.high)
        if not (math.isfinite(low) and math.isfinite(high) and high > low):
            low, high = 0.0, 1.0  # an unbounded or empty range (VMAS positions): the raw value, not normalised
        span = high - low
        features.append({"name": f.name, "expr": f.expr, "weight": repr(weight), "low": repr(low),
                         "span": repr(float(span)), "meaning_comment": " ".join(f.meaning.split())[:100]})
    mask = spec.mask_dead and card.alive is not None
    return _template().render(
        task=card.name, n_agents=card.n_agents, state_dim=card.state_dim, features=features,
        temperature=repr(spec.temperature), vdn_blend=repr(spec.vdn_blend), keep=repr(round(1.0 - spec.vdn_blend, 6)),
        mask_dead=mask,
        alive_expr=_alive_expr(card) if mask else "",
    )
