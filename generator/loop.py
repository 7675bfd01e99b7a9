"""The coder-evaluator loop: R rounds x K candidates, repairs with the failure fed back, the judge,
selection, and the selected candidate plus the judge's advice seeding the next round.

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
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Callable

from tfcaf.errors import InfrastructureError
from tfcaf.evaluator import judge as judge_mod
from tfcaf.evaluator import goals as goals_mod
from tfcaf.evaluator.reward import reward_or_none
from tfcaf.evaluator.selection import select
from tfcaf.files import dumps
from tfcaf.generator import prompting
from tfcaf.generator.backends import Backend, Completion, Message, identity
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
    first, then the store's cache, then the backend.

    Each distinct request (by `request_key`) is logged once per run as an `exchange` event whose `id`
    is the key: the full request (prompt id -> the exact messages, every sampling setting, the JSON
    schema by hash), the model identity and the completion with token log-probs when the backend gives
    them. `cached` says the answer came from the store's cache (it was produced, and logged as new, by
    an earlier run); a repeat of a request inside a run is not logged again. `ask` returns the answer;
    `last_exchange` (per thread) names the exchange that served it, for the candidate event's join."""

    def __init__(self, backend: Backend, rundir: RunDir, cache: ResponseCache | None, config: GenerateConfig) -> None:
        self.backend, self.rundir, self.cache, self.config = backend, rundir, cache, config
        self.stats = LLMStats()
        self.identity = identity(backend)
        self._replay: dict[str, dict[str, Any]] = {}
        self._lock = threading.Lock()
        self._local = threading.local()
        for e in rundir.events("exchange"):
            self._replay.setdefault(e["key"], e["completion"])

    @property
    def last_exchange(self) -> str | None:
        return getattr(self._local, "exchange", None)

    def ask(self, purpose: str, messages: list[Message], sampling: dict[str, Any]) -> Completion:
        key = request_key(self.backend.name, self.backend.model, messages, sampling)
        self._local.exchange = key
        with self._lock:
            if key in self._replay:
                self.stats.cached += 1
                return Completion.from_json(self._replay[key], cached=True)
        answer = self.cache.get(key) if self.cache is not None else None
        if answer is None:
            answer = self.backend.complete(messages, **sampling)
            with self._lock:
                self.stats.calls += 1
                self.stats.prompt_tokens += answer.prompt_tokens
                self.stats.completion_tokens += answer.completion_tokens
                self.stats.by_purpose[purpose] = self.stats.by_purpose.get(purpose, 0) + 1
                cost = (answer.prompt_tokens * self.config.price_prompt + answer.completion_tokens * self.config.price_completion) / 1e6
                self.stats.cost_usd += cost
            if self.cache is not None:
                self.cache.put(key, answer)
        else:
            with self._lock:
                self.stats.cached += 1
            cost = 0.0
        self._log(key, purpose, messages, sampling, answer, cost, self.identity)
        return answer

    def record(self, purpose: str, messages: list[Message], sampling: dict[str, Any], answer: Completion,
               identity: dict[str, Any]) -> str:
        """Log an answer that no LLM produced (a deterministic spec edit of the refinement MDP, a seeded
        starting spec) as an exchange of the `identity`'s producer, so the dataset joins it like any
        other; not counted as an LLM call. Returns its key (also `last_exchange`)."""
        key = request_key(identity["backend"], identity["model"], messages, sampling)
        self._local.exchange = key
        self._log(key, purpose, messages, sampling, answer, 0.0, identity)
        return key

    def _log(self, key: str, purpose: str, messages: list[Message], sampling: dict[str, Any], answer: Completion,
             cost: float, ident: dict[str, Any]) -> None:
        prompt_id = self.rundir.save_prompt(messages)
        schema = sampling.get("json_schema")
        settings = {k: v for k, v in sampling.items() if k != "json_schema"}
        if schema is not None:
            settings["json_schema_sha256"] = self.rundir.save_schema(schema)
        with self._lock:
            if key in self._replay:  # another thread logged the same request meanwhile
                return
            self.rundir.append({"type": "exchange", "id": key, "key": key, "purpose": purpose, "prompt": prompt_id,
                                "sampling": settings, "constrained": schema is not None, "cached": answer.cached,
                                "backend": ident["backend"], "model": ident["model"],
                                "model_sha256": ident.get("model_sha256"),
                                "cost_usd": cost, "completion": answer.to_json()})
            self._replay[key] = answer.to_json()


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
    score: dict[str, Any] | None = None
    """{'total', 'tier', 'vector', 'measured', 'judge'}: the tiered reward (+ the judge's mean, not in the total)."""
    measures: dict[str, Any] = field(default_factory=dict)
    """Measurements made after vetting: micro-tasks on the rebuilt graph, fitness, the spec."""
    reward: dict[str, Any] | None = None
    """The tiered reward as JSON (None for an infrastructure failure)."""
    achieved: list[str] = field(default_factory=list)


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


def _spec_in_order(spec: Any, card: TaskCard) -> Any:
    """A recorded spec with its keys back in the parser's order (the event log sorts keys), so a resumed
    run renders the same prompts from it (weights in card order, then temperature, vdn_blend, mask_dead)."""
    if not isinstance(spec, dict) or not isinstance(spec.get("weights"), dict):
        return spec
    weights = spec["weights"]
    out: dict[str, Any] = {"weights": {f.name: weights[f.name] for f in card.features if f.name in weights}}
    for key in ("temperature", "vdn_blend", "mask_dead", "notes"):
        if key in spec:
            out[key] = spec[key]
    out.update({k: v for k, v in spec.items() if k not in out})
    return out


def _verdict_json(verdict: Any) -> dict[str, Any]:
    data = verdict.to_json() if hasattr(verdict, "to_json") else dict(verdict)
    return json.loads(json.dumps(data, default=str))


class GenerateLoop:
    """Runs (or resumes) one generate run into `rundir`.

    `states` are recorded rollout states of the task ([M, S] rows) for the micro-tasks on accepted
    candidates' rebuilt graphs (card-range draws when None)."""

    def __init__(self, config: GenerateConfig, card: TaskCard, backend: Backend, vet: VetFn, rundir: RunDir,
                 cache: ResponseCache | None = None, fitness: FitnessFn | None = None,
                 progress: Progress | None = None, clock: Callable[[], float] = time.monotonic,
                 states: Any = None, refiner: Any = None) -> None:
        self.config, self.card, self.vet, self.rundir = config, card, vet, rundir
        self.mode = config.resolved_mode
        self.goals = config.resolved_goals(card)
        self.llm = LLMCaller(backend, rundir, cache if config.cache else None, config)
        self.fitness = fitness
        self.states = states
        self.progress = progress or (lambda *a, **k: None)
        self.clock = clock
        self._recorded = rundir.candidates()
        self._events = rundir.load_events()
        self._infra_errors = 0
        self.refiner = refiner
        """A policy (tfcaf.evaluator.refine.Policy) choosing the operator at every repair/refine step; None = plain."""
        self._currents: dict[str, Any] = {}

    # -- one candidate ---------------------------------------------------------------------------
    def _sampling(self, *where: object) -> dict[str, Any]:
        s: dict[str, Any] = {"temperature": self.config.temperature, "top_p": self.config.top_p,
                             "max_tokens": self.config.resolved_max_tokens, "seed": _seed(self.config.seed, *where)}
        if self.mode == "spec":
            s["json_schema"] = spec_schema(self.card)
        return s

    def _measure(self, verdict: dict[str, Any], spec_json: dict[str, Any] | None) -> dict[str, Any]:
        """Micro-tasks on the rebuilt graph of an accepted candidate (trusted process, no candidate Python)."""
        measures: dict[str, Any] = {}
        if spec_json is not None:
            measures["spec"] = {k: v for k, v in spec_json.items() if k != "notes"}
        if verdict.get("verdict") == "accepted" and verdict.get("graph"):
            from tfcaf.evaluator.microtasks import measure_graph
            from tfcaf.errors import RejectedError

            try:
                measures.update(measure_graph(verdict["graph"], self.card, self.states))
            except RejectedError as err:  # cannot happen for a graph the vetter re-checked; recorded if it does
                measures["micro_error"] = str(err)[:200]
        return measures

    def _grade(self, cand: Candidate) -> None:
        """The tiered reward and the achieved goals from the verdict and the measures."""
        measures = {**cand.measures, **({"fitness": cand.fitness} if cand.fitness is not None else {})}
        reward = reward_or_none(cand.verdict, self.card, measures=measures)
        cand.reward = reward.to_json() if reward is not None else None
        cand.achieved = goals_mod.achieved(cand.verdict, self.card, measures) if reward is not None else []

    def vet_answer(self, cid: str, rnd: int, slot: int, attempt: int, answer: str, request: dict[str, Any],
                   extra: dict[str, Any] | None = None) -> Candidate:
        """Vet one answer the way every candidate is vetted (spec parse + render, the vetter, micro-tasks,
        the tiered reward, goals), write its files and its candidate event (`extra` adds fields to the
        event, e.g. the refinement step). `request` names the exchanges, prompt, goal and render info."""
        if cid in self._recorded:  # resumed: reuse, never vet or record twice
            e = self._recorded[cid]
            cand = Candidate(cid, rnd, slot, attempt, bool(e["accepted"]), answer, self.rundir.source(cid),
                             self.rundir.verdict(cid) or {}, _spec_in_order(e.get("spec"), self.card),
                             measures=dict(e.get("measures") or {}))
            if e.get("reward") is not None or "measures" in e:
                cand.reward, cand.achieved = e.get("reward"), list(e.get("achieved") or [])
            else:  # a candidate recorded by an older version: grade it now
                self._grade(cand)
            return cand
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
        cand = Candidate(cid, rnd, slot, attempt, accepted, answer, source, verdict, spec_json)
        cand.measures = self._measure(verdict, spec_json)
        self._grade(cand)
        folder = self.rundir.candidate_dir(cid)
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "response.txt").write_text(answer, encoding="utf-8")
        if source is not None:
            (folder / "source.py").write_text(source, encoding="utf-8")
        if spec_json is not None:
            (folder / "spec.json").write_text(dumps(spec_json, indent=2), encoding="utf-8")
        (folder / "verdict.json").write_text(dumps(verdict, indent=1, sort_keys=True), encoding="utf-8")
        self.rundir.append({"type": "candidate", "cid": cid, "round": rnd, "slot": slot, "attempt": attempt,
                            "accepted": accepted, "verdict": verdict.get("verdict"), "status": verdict.get("status"),
                            "stage": verdict.get("stage"), "reasons": list(verdict.get("reasons") or [])[:3],
                            "spec": spec_json, "metrics": verdict.get("metrics") or {},
                            "exchanges": request["exchanges"], "prompt": request["prompt"], "goal": request["goal"],
                            "render": request["render"], "mode": self.mode,
                            "measures": cand.measures, "reward": cand.reward, "achieved": cand.achieved,
                            **(extra or {})})
        if verdict.get("verdict") == "error":
            self._infra_errors += 1
            if self._infra_errors >= MAX_INFRA_ERRORS:
                reason = "; ".join(verdict.get("reasons") or ["unknown"])
                self.rundir.append({"type": "run_aborted", "reason": f"vetting infrastructure: {reason}"})
                raise InfrastructureError(f"vetting failed twice in a row (not the candidates' fault): {reason}")
        else:
            self._infra_errors = 0
        return cand

    def _refined_slot(self, rnd: int, slot: int, first: list[Message], render_info: dict[str, Any],
                      best: Candidate | None) -> list[Candidate]:
        """One slot under a refiner: start from the first answer (round 0) or the best candidate (later
        rounds), then at most 1 + `repairs` requests (round 0: `repairs`) where the refiner picks the
        operator; the slot ends on `stop`, when every requested goal is met, or on the budget."""
        from tfcaf.evaluator import refine as rf

        runner = rf.OperatorRunner(self, has_llm=True)
        out: list[Candidate] = []
        start = self._currents.get(best.cid) if best is not None else None
        if start is None:
            cid = f"r{rnd}-c{slot}-a0"
            self.progress("status", text=f"asking the LLM for {cid}")
            answer = self.llm.ask("refine" if rnd else "generate", first, self._sampling("coder", rnd, slot, 0))
            request = {"exchanges": [self.llm.last_exchange], "prompt": self.rundir.save_prompt(first),
                       "goal": list(self.goals), "render": {**render_info, "first_messages": len(first)}}
            cand = self.vet_answer(cid, rnd, slot, 0, answer.text, request)
            out.append(cand)
            start = rf.Current(cand, first, answer.text, render_info)
            self._currents[cid] = start
            attempts = range(1, self.config.repairs + 1)
        else:
            attempts = range(0, self.config.repairs + 1)
        current = start
        for attempt in attempts:
            cand = current.cand
            if cand.verdict.get("verdict") == "error" or self._over_budget():
                break
            unmet = [g for g in self.goals if g not in cand.achieved]
            if cand.accepted and not unmet:
                break
            goal = unmet[0] if unmet else "finite"
            state = rf.state_of(current, self.card.name, goal, self.mode, attempt)
            action = self.refiner.choose(state, rf.OPERATORS)
            if isinstance(action, bool) or not isinstance(action, int) or not 0 <= action < len(rf.OPERATORS):
                raise InfrastructureError(f"the refiner chose {action!r}, not an operator index in [0, {len(rf.OPERATORS)})")
            op = rf.OPERATORS[action]
            cid = f"r{rnd}-c{slot}-a{attempt}"
            extra = {"refiner": {"name": self.config.refiner, "operator": op.id, "goal": goal, "from": cand.cid}}
            choice = {"type": "refiner_choice", "cid": cid, "from": cand.cid, "operator": op.id, "goal": goal,
                      "state": state.to_json()}
            if op.id == "stop":
                self._once({**choice, "noop": "stop"})  # a resumed run does not log a choice twice
                break
            self.progress("status", text=f"{op.id} on {cand.cid} -> {cid}")
            done = runner.apply(op, current, cid, (rnd, slot, attempt), extra)
            self._once({**choice, "noop": done.noop, "llm_calls": done.llm_calls, "vet_calls": done.vet_calls})
            if done.current is None:  # a no-op edit: the step is spent, nothing new to vet
                continue
            out.append(done.current.cand)
            self._currents[cid] = done.current
            current = done.current
        return out

    def _slot(self, rnd: int, slot: int, first: list[Message], render_info: dict[str, Any]) -> list[Candidate]:
        """One candidate slot: the first answer, then up to `repairs` repairs while it is rejected."""
        out: list[Candidate] = []
        messages = first
        for attempt in range(self.config.repairs + 1):
            cid = f"r{rnd}-c{slot}-a{attempt}"
            self.progress("status", text=f"asking the LLM for {cid}")
            answer = self.llm.ask("repair" if attempt else ("refine" if rnd else "generate"),
                                  messages, self._sampling("coder", rnd, slot, attempt))
            request = {"exchanges": [self.llm.last_exchange], "prompt": self.rundir.save_prompt(messages),
                       "goal": list(self.goals), "render": {**render_info, "first_messages": len(first)}}
            cand = self.vet_answer(cid, rnd, slot, attempt, answer.text, request)
            out.append(cand)
            if cand.accepted or cand.verdict.get("verdict") == "error" or self._over_budget():
                break
            messages = prompting.repair_messages(messages, answer.text, cand.verdict, self.mode)
        return out

    # -- judge, fitness, selection ---------------------------------------------------------------
    def _critique(self, cand: Candidate) -> None:
        done = self._recorded.get(cand.cid, {})
        if "critique" in done:
            cand.critique = done["critique"]
            return
        if not self.config.judge or cand.source is None:
            return
        if self._over_budget():
            self.rundir.append({"type": "critique", "cid": cand.cid, "critique": None, "reason": "skipped: time budget spent",
                                "attempts": 0, "exchanges": []})
            return
        self.progress("status", text=f"judge on {cand.cid}")
        used: list[str] = []

        def ask(m: list[Message], s: dict[str, Any]) -> Completion:
            answer = self.llm.ask("judge", m, s)
            used.append(self.llm.last_exchange or "")
            return answer

        result = judge_mod.critique(ask, self.card, cand.source, cand.verdict.get("metrics") or {},
                                    seed=_seed(self.config.seed, "critic", cand.cid),
                                    spec=cand.spec if self.mode == "spec" else None)
        cand.critique = result.critique.to_json() if result.critique else None
        self.rundir.append({"type": "critique", "cid": cand.cid, "critique": cand.critique, "reason": result.reason,
                            "attempts": result.attempts, "exchanges": used})

    def _score(self, cand: Candidate) -> None:
        if self.fitness is not None and cand.fitness is None and cand.verdict.get("graph"):
            cand.fitness = float(self.fitness(cand.verdict["graph"], self.card, self.config.fitness_steps,
                                              _seed(self.config.seed, "fitness", cand.cid)))
        self._grade(cand)
        judge = (cand.critique or {}).get("mean")
        cand.score = {**(cand.reward or {"total": 0.0}), "judge": judge}
        if self._recorded.get(cand.cid, {}).get("score") != cand.score:
            self.rundir.append({"type": "score", "cid": cand.cid, "score": cand.score, "fitness": cand.fitness,
                                "reward": cand.reward, "achieved": cand.achieved})

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
                render_info = {"fn": "generate", "args": {"mode": self.mode}}
            else:
                render_info = {"fn": "refine", "args": {"mode": self.mode, "best_answer": self._seed_answer(best),
                                                        "advice": (best.critique or {}).get("advice"),
                                                        "score": (best.reward or {}).get("total")}}
            first = prompting.rerender(render_info, self.card, self.goals)
            for slot in range(self.config.k):
                if self._over_budget():
                    stopped = "time budget"
                    break
                if self.refiner is not None:
                    made = self._refined_slot(rnd, slot, first, render_info, best)
                else:
                    made = self._slot(rnd, slot, first, render_info)
                candidates.extend(made)
                for cand in made:
                    if cand.accepted:
                        if self._first_accepted is None:
                            self._first_accepted = self.clock() - self._start
                        self._critique(cand)
                        self._score(cand)
                if made:
                    self.progress("candidate", cid=made[-1].cid, accepted=made[-1].accepted)
            ranked = [{"cid": c.cid, "accepted": c.accepted, "reward": c.reward, "judge": (c.critique or {}).get("mean")}
                      for c in candidates]
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
