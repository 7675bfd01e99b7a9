"""Closed verdict type of the vetting pipeline: a fixed set of statuses, reasons, metrics.

A `Verdict` is what `tfcaf vet` prints and what the generator feeds back to the LLM. Statuses are a
closed set; `verdict == "error"` (status "infrastructure") is an infrastructure failure and is never the
candidate's fault.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from tfcaf.errors import RejectedError

STATUSES = ("ok", "text", "static", "restricted", "runtime", "contract", "property", "timeout",
            "memory", "escape", "export", "infrastructure")
"""ok: accepted. text: text gate (fences, Unicode, size). static: AST allow-list. restricted:
RestrictedPython compile or a blocked attribute at run time. runtime: the candidate raised. contract:
output shape/dtype/device. property: a property gate failed. timeout / memory: resource limits.
escape: an escape attempt (dunder walk, frames, torch.os, code loading, ...). export: torch.export or
the ATen allow-list refused the graph, or the graph differs from the eager function.
infrastructure: the vetting machinery failed (verdict 'error')."""

STAGES = ("text", "ast", "restricted", "worker", "properties", "export")
"""Layers in the order they run; `stage` names the one that decided."""

VERDICTS = ("accepted", "rejected", "error")


@dataclass(frozen=True)
class Verdict:
    """The outcome of vetting one candidate.

    >>> v = Verdict("rejected", "static", "ast", ("while loops are not allowed (line 3)",))
    >>> v.accepted, v.to_json()["status"]
    (False, 'static')
    """

    verdict: str
    """'accepted' | 'rejected' | 'error' (infrastructure failure, not the candidate's fault)."""
    status: str
    """One of STATUSES; 'ok' iff accepted."""
    stage: str
    """The layer that decided: one of STAGES."""
    reasons: tuple[str, ...]
    """Short readable reasons, fed back to the LLM."""
    counterexample: dict | None = None
    """JSON-able failing inputs and values, when a property failed."""
    metrics: dict = field(default_factory=dict)
    """Soft qualities (dead_agent_credit, state_dependence, vdn_distance, mono_min_grad), timings (ms), memory."""
    source: str | None = None
    """The extracted module source, when extraction succeeded."""
    graph: dict | None = None
    """The exported graph as plain JSON data, when accepted."""

    def __post_init__(self) -> None:
        if self.verdict not in VERDICTS:
            raise ValueError(f"unknown verdict {self.verdict!r}")
        if self.status not in STATUSES:
            raise ValueError(f"unknown status {self.status!r}")
        if (self.status == "ok") != (self.verdict == "accepted"):
            raise ValueError("status 'ok' iff verdict 'accepted'")
        if (self.status == "infrastructure") != (self.verdict == "error"):
            raise ValueError("status 'infrastructure' iff verdict 'error'")

    @property
    def accepted(self) -> bool:
        return self.verdict == "accepted"

    def to_json(self) -> dict[str, Any]:
        """Plain JSON data (every field)."""
        return {"verdict": self.verdict, "status": self.status, "stage": self.stage,
                "reasons": list(self.reasons), "counterexample": self.counterexample,
                "metrics": dict(self.metrics), "source": self.source, "graph": self.graph}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> "Verdict":
        return cls(verdict=data["verdict"], status=data["status"], stage=data["stage"],
                   reasons=tuple(data.get("reasons", ())), counterexample=data.get("counterexample"),
                   metrics=dict(data.get("metrics") or {}), source=data.get("source"), graph=data.get("graph"))

    def summary(self) -> str:
        """One line: verdict, status, stage and the first reason."""
        head = f"{self.verdict} ({self.status}, stage {self.stage})"
        return f"{head}: {self.reasons[0]}" if self.reasons else head


def rejected(status: str, stage: str, *reasons: str, **extra: Any) -> Verdict:
    """A rejection; `extra` fills counterexample / metrics / source."""
    return Verdict("rejected", status, stage, tuple(reasons), **extra)


def infrastructure(stage: str, *reasons: str, **extra: Any) -> Verdict:
    """An infrastructure failure (verdict 'error')."""
    return Verdict("error", "infrastructure", stage, tuple(reasons), **extra)


class Rejection(RejectedError):
    """Raised inside a layer to reject a candidate with a status and a reason."""

    def __init__(self, status: str, stage: str, reason: str, counterexample: dict | None = None) -> None:
        super().__init__(reason)
        self.status, self.stage, self.reason, self.counterexample = status, stage, reason, counterexample

    def verdict(self, **extra: Any) -> Verdict:
        return rejected(self.status, self.stage, self.reason, counterexample=self.counterexample, **extra)
