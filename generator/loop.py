"""The coder-evaluator loop: R rounds x K candidates, repairs with the failure fed back, a critic,
selection, and the selected candidate plus the critic's advice seeding the next round.

Every loop is bounded: at most rounds * k * (1 + repairs) coder requests and 2 evaluator requests per
accepted candidate; `time_budget_s` stops new requests once something was accepted. Everything is
recorded in the run directory before it is used, so a killed run resumes without losing or duplicating
a candidate (see rundir.py). Candidate ids are positional — `r<round>-c<slot>-a<attempt>` — and every
request's seed derives from the base seed and that position, so a resumed run asks the same questions.

    result = GenerateLoop(config, card, backend, vet=my_vetter.vet, rundir=rd).run()
    result.selected, result.accepted, result.llm_calls
"""

from __future__ import annotations

import hashlib
import json
import time
from dataclasses import dataclass, field
from typing import Any, Callable

from tfcaf.errors import InfrastructureError
from tfcaf.evaluator import critic as critic_mod
from tfcaf.evaluator.selection import combined_score, select
from tfcaf.generator import prompting
from tfcaf.generator.backends import Backend, Completion, Message
from tfcaf.generator.config import GenerateConfig
from tfcaf.generator.rundir import ResponseCache, RunDir, request_key
from tfcaf.generator.spec import SpecError, parse_spec, render_spec, spec_schema
from tfcaf.tasks.card import TaskCard

VetFn = Callable[[str, TaskCard], Any]
"""vet(text, card) -> a Verdict (tfcaf.sandbox.verdict) or anything with to_json()."""
FitnessFn = Callable[[dict, TaskCard, int, int], float]
"""fitness(graph, card, steps, seed) -> a number in [0, 1] (higher is better)."""
Progress = Callable[..., None]
"""progress(event, **info): 'candidate' (advance the bar), 'status' (describe what runs)."""

MAX_INFRA_ERRORS = 2
"""Consecutive vetting infrastructure errors after which the run stops with exit code 3."""


@dataclass
class LLMStats:
    """Per-run accounting of the requests actually sent (cached answers cost nothing)."""

    calls: int = 0
    cached: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cost_usd: float = 0.0
    by_purpose: dict[str, int] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {"llm_calls": self.calls, "cached_calls": self.cached,
                "tokens": {"prompt": self.prompt_tokens, "completion": self.completion_tokens,
                           "total": self.prompt_tokens + self.completion_tokens},
                "cost_usd": round(self.cost_usd, 6), "calls_by_purpose": dict(self.by_purpose)}


class LLMCaller:
    """Backend + response cache + exchange log. Answers recorded in this run (a resumed run) are served
    first, then the store's cache, then the backend."""

    def __init__(self, backend: Backend, rundir: RunDir, cache: ResponseCache | None, config: GenerateConfig) -> None:
        self.backend, self.rundir, self.cache, self.config = backend, rundir, cache, config
        self.stats = LLMStats()
        self._replay: dict[str, dict[str, Any]] = {}
        for e in rundir.events("exchange"):
            self._replay.setdefault(e["key"], e["completion"])

    def ask(self, purpose: str, messages: list[Message], sampling: dict[str, Any]) -> Completion:
        key = request_key(self.backend.name, self.backend.model, messages, sampling)
        if key in self._replay:
            self.stats.cached += 1
            return Completion.from_json(self._replay[key], cached=True)
        answer = self.cache.get(key) if self.cache is not None else None
        if answer is None:
            answer = self.backend.complete(messages, **sampling)
            self.stats.calls += 1
            self.stats.prompt_tokens += answer.prompt_tokens
            self.stats.completion_tokens += answer.completion_tokens
            self.stats.by_purpose[purpose] = self.stats.by_purpose.get(purpose, 0) + 1
            cost = (answer.prompt_tokens * self.config.price_prompt + answer.completion_tokens * self.config.price_completion) / 1e6
            self.stats.cost_usd += cost
            if self.cache is not None:
                self.cache.put(key, answer)
        else:
            self.stats.cached += 1
            cost = 0.0
        prompt_id = self.rundir.save_prompt(messages)
        self.rundir.append({"type": "exchange", "key": key, "purpose": purpose, "prompt": prompt_id,
                            "sampling": {k: v for k, v in sampling.items() if k != "json_schema"},
                            "constrained": "json_schema" in sampling, "cached": answer.cached,
                            "cost_usd": cost, "completion": answer.to_json()})
        self._replay[key] = answer.to_json()
        return answer


@dataclass
class Candidate:
    """One vetted answer."""

    cid: str
    round: int
    slot: int
    attempt: int
    accepted: bool
    answer: str
    source: str | None
    verdict: dict[str, Any]
    spec: dict[str, Any] | None = None
    critique: dict[str, Any] | None = None
    fitness: float | None = None
    score: dict[str, float] | None = None


@dataclass
class LoopResult:
    """What a run produced (summary.json holds the same as JSON)."""

    candidates: list[Candidate]
    selected: str | None
    stats: LLMStats
    wall_s: float
    first_accepted_s: float | None
    stopped: str

    @property
    def accepted(self) -> int:
        return sum(c.accepted for c in self.candidates)


def _seed(base: int, *parts: object) -> int:
    digest = hashlib.sha256(":".join(map(str, (base, *parts))).encode()).hexdigest()
    return int(digest[:8], 16) % (2**31 - 1)


def _verdict_json(verdict: Any) -> dict[str, Any]:
    data = verdict.to_json() if hasattr(verdict, "to_json") else dict(verdict)
    return json.loads(json.dumps(data, default=str))


class GenerateLoop:
    """Runs (or resumes) one generate run into `rundir`."""

    def __init__(self, config: GenerateConfig, card: TaskCard, backend: Backend, vet: VetFn, rundir: RunDir,
                 cache: ResponseCache | None = None, fitness: FitnessFn | None = None,
                 progress: Progress | None = None, clock: Callable[[], float] = time.monotonic) -> None:
        self.config, self.card, self.vet, self.rundir = config, card, vet, rundir
        self.mode = config.resolved_mode
        self.llm = LLMCaller(backend, rundir, cache if config.cache else None, config)
        self.fitness = fitness
        self.progress = progress or (lambda *a, **k: None)
        self.clock = clock
        self._recorded = rundir.candidates()
        self._events = rundir.load_events()
        self._infra_errors = 0

    # -- one candidate ---------------------------------------------------------------------------
    def _sampling(self, *where: object) -> dict[str, Any]:
        s: dict[str, Any] = {"temperature": self.config.temperature, "top_p": self.config.top_p,
                             "max_tokens": self.config.resolved_max_tokens, "seed": _seed(self.config.seed, *where)}
        if self.mode == "spec":
            s["json_schema"] = spec_schema(self.card)
        return s

    def _vet_answer(self, cid: str, rnd: int, slot: int, attempt: int, answer: str) -> Candidate:
        if cid in self._recorded:  # resumed: reuse, never vet or record twice
            e = self._recorded[cid]
            return Candidate(cid, rnd, slot, attempt, bool(e["accepted"]), answer, self.rundir.source(cid),
                             self.rundir.verdict(cid) or {}, e.get("spec"))
        spec_json = None
        if self.mode == "spec":
            try:
                spec = parse_spec(answer, self.card)
                spec_json = {**spec.to_json(), "notes": list(spec.notes)}
                text = render_spec(spec, self.card)
            except SpecError as err:
                text = None
                verdict = {"verdict": "rejected", "status": "text", "stage": "text", "reasons": [f"spec: {err}"],
                           "counterexample": None, "metrics": {}, "source": None, "graph": None}
        else:
            text = answer
        if text is not None:
            self.progress("status", text=f"vetting {cid}")
            verdict = _verdict_json(self.vet(text, self.card))
        accepted = verdict.get("verdict") == "accepted"
        source = verdict.get("source") or (text if self.mode == "spec" else None)
        folder = self.rundir.candidate_dir(cid)
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "response.txt").write_text(answer, encoding="utf-8")
        if source is not None:
            (folder / "source.py").write_text(source, encoding="utf-8")
        if spec_json is not None:
            (folder / "spec.json").write_text(json.dumps(spec_json, indent=2), encoding="utf-8")
        (folder / "verdict.json").write_text(json.dumps(verdict, indent=1, sort_keys=True), encoding="utf-8")
        self.rundir.append({"type": "candidate", "cid": cid, "round": rnd, "slot": slot, "attempt": attempt,
                            "accepted": accepted, "verdict": verdict.get("verdict"), "status": verdict.get("status"),
                            "stage": verdict.get("stage"), "reasons": list(verdict.get("reasons") or [])[:3],
                            "spec": spec_json, "metrics": verdict.get("metrics") or {}})
        if verdict.get("verdict") == "error":
            self._infra_errors += 1
            if self._infra_errors >= MAX_INFRA_ERRORS:
                reason = "; ".join(verdict.get("reasons") or ["unknown"])
                self.rundir.append({"type": "run_aborted", "reason": f"vetting infrastructure: {reason}"})
                raise InfrastructureError(f"vetting failed twice in a row (not the candidates' fault): {reason}")
        else:
            self._infra_errors = 0
        return Candidate(cid, rnd, slot, attempt, accepted, answer, source, verdict, spec_json)

    def _slot(self, rnd: int, slot: int, first: list[Message]) -> list[Candidate]:
        """One candidate slot: the first answer, then up to `repairs` repairs while it is rejected."""
        out: list[Candidate] = []
        messages = first
        for attempt in range(self.config.repairs + 1):
            cid = f"r{rnd}-c{slot}-a{attempt}"
            self.progress("status", text=f"asking the LLM for {cid}")
            answer = self.llm.ask("repair" if attempt else ("refine" if rnd else "generate"),
                                  messages, self._sampling("coder", rnd, slot, attempt))
            cand = self._vet_answer(cid, rnd, slot, attempt, answer.text)
            out.append(cand)
            if cand.accepted or cand.verdict.get("verdict") == "error" or self._over_budget():
                break
            messages = prompting.repair_messages(messages, answer.text, cand.verdict, self.mode)
        return out

    # -- critic, fitness, selection --------------------------------------------------------------
    def _critique(self, cand: Candidate) -> None:
        done = self._recorded.get(cand.cid, {})
        if "critique" in done:
            cand.critique = done["critique"]
            return
        if not self.config.critic or cand.source is None:
            return
        if self._over_budget():
            self.rundir.append({"type": "critique", "cid": cand.cid, "critique": None, "reason": "skipped: time budget spent",
                                "attempts": 0})
            return
        self.progress("status", text=f"evaluator on {cand.cid}")
        result = critic_mod.critique(lambda m, s: self.llm.ask("critic", m, s), self.card, cand.source,
                                     cand.verdict.get("metrics") or {}, seed=_seed(self.config.seed, "critic", cand.cid),
                                     spec=cand.spec if self.mode == "spec" else None)
        cand.critique = result.critique.to_json() if result.critique else None
        self.rundir.append({"type": "critique", "cid": cand.cid, "critique": cand.critique, "reason": result.reason,
                            "attempts": result.attempts})

    def _score(self, cand: Candidate) -> None:
        if self.fitness is not None and cand.fitness is None and cand.verdict.get("graph"):
            cand.fitness = float(self.fitness(cand.verdict["graph"], self.card, self.config.fitness_steps,
                                              _seed(self.config.seed, "fitness", cand.cid)))
        critic_mean = (cand.critique or {}).get("mean")
        cand.score = combined_score(cand.verdict.get("metrics") or {}, critic_mean, cand.fitness,
                                    has_alive=self.card.alive is not None)
        if self._recorded.get(cand.cid, {}).get("score") != cand.score:
            self.rundir.append({"type": "score", "cid": cand.cid, "score": cand.score, "fitness": cand.fitness})

    def _over_budget(self) -> bool:
        return bool(self.config.time_budget_s) and self._first_accepted is not None \
            and self.clock() - self._start > self.config.time_budget_s

    def _seed_answer(self, cand: Candidate) -> str:
        if self.mode == "spec" and cand.spec is not None:
            return json.dumps({k: v for k, v in cand.spec.items() if k != "notes"})
        return cand.source or cand.answer

    # -- the run ---------------------------------------------------------------------------------
    def run(self) -> LoopResult:
        self._start = self.clock()
        self._first_accepted: float | None = None
        candidates: list[Candidate] = []
        best: Candidate | None = None
        stopped = "completed"
        for rnd in range(self.config.rounds):
            if self._over_budget():
                stopped = "time budget"
                break
            if best is None:
                first = prompting.generate_messages(self.card, self.mode)
            else:
                first = prompting.refine_messages(self.card, self.mode, self._seed_answer(best),
                                                  (best.critique or {}).get("advice"), (best.score or {}).get("total"))
            for slot in range(self.config.k):
                if self._over_budget():
                    stopped = "time budget"
                    break
                made = self._slot(rnd, slot, first)
                candidates.extend(made)
                for cand in made:
                    if cand.accepted:
                        if self._first_accepted is None:
                            self._first_accepted = self.clock() - self._start
                        self._critique(cand)
                        self._score(cand)
                self.progress("candidate", cid=made[-1].cid, accepted=made[-1].accepted)
            ranked = [{"cid": c.cid, "accepted": c.accepted, "score": c.score} for c in candidates]
            chosen = select(ranked)
            best = next((c for c in candidates if c.cid == chosen), None)
            self._once({"type": "round_done", "round": rnd, "best": chosen})
            if stopped != "completed":
                break
        selected = best.cid if best else None
        result = LoopResult(candidates, selected, self.llm.stats, self.clock() - self._start, self._first_accepted, stopped)
        self.rundir.append({"type": "selection", "selected": selected,
                            "score": (best.score if best else None), "stopped": stopped})
        return result

    def _once(self, event: dict[str, Any]) -> None:
        """Append an event unless an identical one (same type and fields) is already in the log."""
        for e in self._events:
            if all(e.get(k) == v for k, v in event.items()):
                return
        self.rundir.append(event)
