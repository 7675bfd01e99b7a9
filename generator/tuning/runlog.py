"""`tfcaf tune --online` samples as runs in the store's run log, so `tfcaf dataset build` makes them rows.

One run per task per tune invocation, `<store>/runs/<task>/<run-id>/` through the core `tfcaf.rundir.RunDir`,
with the files and events the generate loop writes (generator/loop.py): config.json, card.json,
versions.json, model.json, a `run_started` event, per sample an `exchange` event (the exact messages by
prompt id, the sampling settings, the completion) and a `candidate` event naming that exchange, with
`candidates/<cid>/{response.txt, source.py, verdict.json}` written first, and at the end `selection` and
`run_finished` events and summary.json. Candidate ids are `s<step>-<role>-<n>` (step, the role: rft,
tbrm, pioneer, observer, and a running number). The backend is recorded as `tune` and the model as
`tune:<NAME>` with the base's sha256: the answers came from the policy being trained, at that step.

No `measures` are recorded, so the dataset build measures accepted graphs' micro-tasks itself (the
same formula as for every run); the candidate event's `reward` is the tiered reward training used.
Samples scored without a verdict (toy rewards in tests) are not logged here.

    log = TuneRunLog(store, "t1", config.to_json(), base.identity, "code")
    log.add("matrix_climbing", messages, text, scored, step=0, role="rft", sampling={...}, tokens=(561, 200))
    log.close("finished")
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from tfcaf.files import dumps
from tfcaf.rundir import RunDir

BACKEND = "tune"
"""Backend name recorded for samples drawn by `tfcaf tune` from the policy it trains."""


def verdict_of(scored: Any) -> dict[str, Any] | None:
    """The full verdict JSON a reward function attached to its Scored, or None."""
    verdict = getattr(scored, "verdict", None)
    return verdict if isinstance(verdict, dict) and isinstance(verdict.get("verdict"), str) else None


class TuneRunLog:
    """Writes online tuning samples as generate-style runs (one per task), created on the first sample."""

    def __init__(self, store: Path, name: str, config: dict[str, Any], base_identity: dict[str, Any], mode: str) -> None:
        self.store, self.name, self.config, self.base, self.mode = Path(store), name, config, base_identity, mode
        self.model = f"{BACKEND}:{name}"
        self.runs: dict[str, RunDir] = {}
        self.counts: dict[str, dict[str, int]] = {}
        self._n = 0

    def identity(self) -> dict[str, Any]:
        return {"backend": BACKEND, "model": self.model, "model_sha256": self.base.get("sha256"),
                "base": dict(self.base), "generator": self.name, "effective_defaults": {}}

    def _run(self, task: str) -> RunDir:
        if task in self.runs:
            return self.runs[task]
        from tfcaf.provenance import versions
        from tfcaf.store import new_run_id
        from tfcaf.tasks.card import card_to_json
        from tfcaf.tasks.registry import get_card

        card = get_card(task)
        rundir = RunDir.create(self.store, card.name, new_run_id())
        rundir.write_json("config.json", {"config": {**self.config, "backend": BACKEND, "generator": self.name,
                                                     "mode": self.mode},
                                          "sources": {}, "mode": self.mode, "kind": "tune",
                                          "max_tokens": self.config.get("max_new_tokens")})
        rundir.write_json("card.json", card_to_json(card))
        rundir.write_json("versions.json", versions())
        rundir.write_json("model.json", self.identity())
        rundir.append({"type": "run_started", "task": card.name, "backend": BACKEND, "generator": self.name,
                       "mode": self.mode, "model_identity": self.identity(), "goal": [], "source": "tune"})
        self.runs[task] = rundir
        self.counts[task] = {"candidates": 0, "accepted": 0}
        return rundir

    def add(self, task: str, messages: list[dict[str, str]], text: str, scored: Any, step: int, role: str,
            sampling: dict[str, Any], tokens: tuple[int, int] = (0, 0), latency_s: float = 0.0,
            render: dict[str, Any] | None = None) -> str | None:
        """Log one sample (exchange + candidate); returns its candidate id, or None when it has no verdict.

        `render` names the template that made `messages` ({'fn', 'args'}), so hindsight relabelling can
        re-render it; None for prompts no template reproduces (CORY's observer)."""
        from tfcaf.generator.rundir import request_key

        verdict = verdict_of(scored)
        if verdict is None:
            return None
        rundir = self._run(task)
        cid = f"s{step}-{role}-{self._n}"
        self._n += 1
        request = {**sampling, "step": step, "role": role, "sample": cid}  # one sample, one request key
        key = request_key(BACKEND, self.model, messages, request)
        prompt_id = rundir.save_prompt(messages)
        rundir.append({"type": "exchange", "id": key, "key": key, "purpose": "observer" if role == "observer" else "generate",
                       "prompt": prompt_id, "sampling": request, "constrained": False, "cached": False,
                       "backend": BACKEND, "model": self.model, "model_sha256": self.base.get("sha256"), "cost_usd": 0.0,
                       "completion": {"text": text, "prompt_tokens": int(tokens[0]), "completion_tokens": int(tokens[1]),
                                      "latency_s": round(float(latency_s), 4), "model": self.model,
                                      "raw": {"step": step, "role": role}, "logprobs": None}})
        accepted = verdict.get("verdict") == "accepted"
        source = verdict.get("source") if isinstance(verdict.get("source"), str) else None
        folder = rundir.candidate_dir(cid)
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "response.txt").write_text(text, encoding="utf-8")
        if source is not None:
            (folder / "source.py").write_text(source, encoding="utf-8")
        (folder / "verdict.json").write_text(dumps(json.loads(json.dumps(verdict, default=str)), indent=1, sort_keys=True),
                                             encoding="utf-8")
        info = getattr(scored, "info", {}) or {}
        rundir.append({"type": "candidate", "cid": cid, "round": step, "slot": self.counts[task]["candidates"], "attempt": 0,
                       "accepted": accepted, "verdict": verdict.get("verdict"), "status": verdict.get("status"),
                       "stage": verdict.get("stage"), "reasons": list(verdict.get("reasons") or [])[:3],
                       "spec": None, "metrics": verdict.get("metrics") or {}, "exchanges": [key], "prompt": prompt_id,
                       "goal": [], "render": None if render is None else {**render, "first_messages": len(messages)},
                       "mode": self.mode, "role": role,
                       "reward": {"total": float(scored.reward), "tier": info.get("tier"), "vector": info.get("vector")},
                       "achieved": []})
        self.counts[task]["candidates"] += 1
        self.counts[task]["accepted"] += int(accepted)
        return cid

    def close(self, status: str) -> list[str]:
        """Finish every run (selection: none, these are training samples; run_finished; summary.json).
        Returns the run directories."""
        out = []
        for task, rundir in self.runs.items():
            counts = self.counts[task]
            rundir.append({"type": "selection", "selected": None, "score": None, "stopped": f"tune {status}"})
            summary = {"run_id": rundir.run_id, "run_dir": str(rundir.path), "task": task, "backend": BACKEND,
                       "generator": self.name, "model": self.model, "mode": self.mode, "source": "tune",
                       "candidates": counts["candidates"], "accepted": counts["accepted"], "selected": None,
                       "status": status}
            rundir.write_json("summary.json", summary)
            rundir.append({"type": "run_finished", "accepted": counts["accepted"], "selected": None, "status": status})
            out.append(str(rundir.path))
        return out
