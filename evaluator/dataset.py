"""`tfcaf dataset`: every generated candidate as a training row (TBRM, CORY, SAC-GLAM), with hindsight
relabelling.

One JSON object per line (schema: README, "Dataset rows"); the fields every consumer needs:

- `id` (`<task>/<run>/<cid>`, `+her` for a relabelled row), `source` {run, candidate, exchange},
  `task`, `mode`, `messages` (the exact chat messages sent), `response` (the raw answer text),
  `generator` {backend, model, model_sha256, sampling, effective_defaults (JSON text)},
  `reward` (goal-conditioned, see `reward.goal_reward`), `reward_total` (the tiered reward),
  `reward_vector`, `tier`, `verdict` {verdict, status, stage, reason}, `goal`, `achieved`,
  `relabeled`, `relabeled_from`, `logprobs` ([{id, token, logprob}] or null), `judge` (mean or null),
  `request_key`.

Rows are joined by ids, never by order: a candidate event names its exchange(s) and prompt; runs made
before that existed are joined by matching the coder exchange whose answer is the candidate's
response. Rewards and achieved goals are recomputed here from the verdict (the same formula for every
run; micro-tasks re-run on the trusted rebuilt graph for runs that predate them). Requests are
deduplicated by request key across runs (a cached answer in a later run is the same sample).

Hindsight relabelling (SAC-GLAM's HER): a candidate that missed some of its requested goals gets one
more row whose `goal` is the goals it achieved, its prompt re-rendered from the same template with
those goals (verified first: re-rendering with the original goals must reproduce the recorded
messages exactly, else no relabelled row), the response unchanged and the reward recomputed for the
new goals. A relabelled row never names a goal whose check failed.

Code-mode rows from spec-mode candidates (`as_code=True`, `tfcaf dataset build --as-code`): a spec-mode
answer is rendered by a template into `QLLMNetwork` source, and that source is what the vetter judged.
So each spec-mode candidate with a rendered source gets one more row in mode `code`: `messages` are the
code-mode request the loop sends for that task with the same goals (`prompting.generate_messages(card,
"code", goals)`), `response` is the vetted source in a python fence, the reward and achieved goals are
recomputed from that candidate's verdict (the measures without the spec's own numbers, which a code
answer does not have), `relabeled: true`, `relabeled_from` the spec row's id, id `<spec id>+code`,
`logprobs: null` (the recorded log-probs are the spec answer's). Identical sources of one task give one
code row (the first), counted as `as_code_skipped_duplicate_source`; a spec answer that did not parse
has no source and no code row.

Everything read from the store is untrusted data: malformed files or events skip that candidate and
are counted in the build report, never crash the build.
"""

from __future__ import annotations

import json
import math
from collections import Counter
from pathlib import Path
from typing import Any, Iterable, Iterator

from tfcaf.errors import UsageError
from tfcaf.evaluator import goals as goals_mod
from tfcaf.evaluator.reward import goal_reward, reward_or_none

CODER_PURPOSES = ("generate", "refine", "repair")
ROW_FIELDS = ("id", "source", "task", "mode", "messages", "response", "generator", "reward", "reward_total",
              "reward_vector", "tier", "verdict", "goal", "achieved", "relabeled", "relabeled_from", "logprobs",
              "judge", "request_key")
HISTOGRAM_BINS = 10


def _runs(store: Path, refs: Iterable[str] | None) -> list[Any]:
    from tfcaf.rundir import RunDir

    if refs:
        return [RunDir.open(store, r) for r in refs]
    runs = Path(store) / "runs"
    if not runs.is_dir():
        raise UsageError(f"no runs under {runs}: make one with `tfcaf generate --task T --store {store}`.")
    found = sorted((p for p in runs.glob("*/*") if (p / "events.jsonl").is_file()), key=lambda p: (p.name, p.parent.name))
    return [RunDir(p) for p in found]


def _text(path: Path, limit: int = 4_000_000) -> str | None:
    try:
        if not path.is_file() or path.stat().st_size > limit:
            return None
        return path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        return None


def _json_file(path: Path) -> Any:
    text = _text(path, 64_000_000)
    if text is None:
        return None
    try:
        return json.loads(text)
    except ValueError:
        return None


def _messages(data: Any) -> list[dict[str, str]] | None:
    if not isinstance(data, list) or not data:
        return None
    out = []
    for m in data:
        if not isinstance(m, dict) or not isinstance(m.get("role"), str) or not isinstance(m.get("content"), str):
            return None
        out.append({"role": m["role"], "content": m["content"]})
    return out


def _logprobs(data: Any) -> list[dict[str, Any]] | None:
    if not isinstance(data, list):
        return None
    out = []
    for t in data:
        if not isinstance(t, dict) or not isinstance(t.get("logprob"), (int, float)) or not math.isfinite(t["logprob"]):
            return None
        tid = t.get("id")
        out.append({"id": int(tid) if isinstance(tid, int) and not isinstance(tid, bool) else -1,
                    "token": str(t.get("token", "")), "logprob": float(t["logprob"])})
    return out


class Builder:
    """Builds dataset rows from runs; `report` counts what was kept and skipped (and why)."""

    def __init__(self, store: Path, her: bool = True, as_code: bool = False) -> None:
        self.store, self.her, self.as_code = Path(store), her, as_code
        self.report: Counter[str] = Counter()
        self._seen: set[str] = set()
        self._code_seen: set[tuple[str, str]] = set()
        self._states: dict[str, Any] = {}

    def _real_states(self, task: str) -> Any:
        if task not in self._states:
            from tfcaf.generator.session import real_states

            self._states[task] = real_states(task, self.store)
        return self._states[task]

    def rows(self, runs: list[Any]) -> Iterator[dict[str, Any]]:
        for rundir in runs:
            yield from self._run_rows(rundir)

    def _run_rows(self, rundir: Any) -> Iterator[dict[str, Any]]:
        from tfcaf.tasks.registry import get_card

        try:
            card = get_card(rundir.task)  # the registry's card: card.json in the store is untrusted data
        except UsageError:
            self.report["runs_unknown_task"] += 1
            return
        events = rundir.load_events()
        self.report["runs"] += 1
        exchanges = {e["id"] if isinstance(e.get("id"), str) else e.get("key"): e for e in events
                     if e.get("type") == "exchange" and isinstance(e.get("key"), str)}
        model = _json_file(rundir.path / "model.json")
        if not isinstance(model, dict):
            model = next((e.get("model_identity") for e in events if e.get("type") == "run_started"
                          and isinstance(e.get("model_identity"), dict)), {})
        config = (_json_file(rundir.path / "config.json") or {}).get("config") or {}
        candidates = rundir.candidates()
        judges = {e.get("cid"): (e.get("critique") or {}).get("mean") for e in events
                  if e.get("type") == "critique" and isinstance(e.get("critique"), dict)}
        used: set[str] = set()
        for cid, event in candidates.items():
            try:
                row = self._row(rundir, card, cid, event, exchanges, used, model, config, judges.get(cid))
            except (KeyError, TypeError, ValueError, AttributeError) as err:
                self.report[f"skipped_malformed ({type(err).__name__})"] += 1
                continue
            if row is None:
                continue
            yield row
            self.report["rows"] += 1
            if self.her:
                extra = self._relabel(row, card, event)
                if extra is not None:
                    self.report["relabeled_rows"] += 1
                    yield extra
            if self.as_code and row["mode"] == "spec":
                code = self._code_row(rundir, card, row, event)
                if code is not None:
                    self.report["as_code_rows"] += 1
                    yield code

    def _exchange_for(self, rundir: Any, event: dict[str, Any], response: str | None, exchanges: dict[str, dict],
                      used: set[str]) -> dict[str, Any] | None:
        ids = event.get("exchanges")
        if isinstance(ids, list) and ids and isinstance(ids[0], str):
            return exchanges.get(ids[0])
        # a run from before candidate events named their exchanges: the unused coder exchange with this answer
        self.report["joined_by_answer (old run)"] += 1
        for key, e in exchanges.items():
            if key not in used and e.get("purpose") in CODER_PURPOSES and (e.get("completion") or {}).get("text") == response:
                used.add(key)
                return e
        return None

    def _row(self, rundir: Any, card: Any, cid: str, event: dict[str, Any], exchanges: dict[str, dict], used: set[str],
             model: dict[str, Any], config: dict[str, Any], judge: Any) -> dict[str, Any] | None:
        from tfcaf.verdict import Verdict

        response = _text(rundir.candidate_dir(cid) / "response.txt")
        exchange = self._exchange_for(rundir, event, response, exchanges, used)
        if exchange is None:
            self.report["skipped_no_exchange"] += 1
            return None
        completion = exchange.get("completion") or {}
        if response is None:
            response = completion.get("text")
        messages = _messages(rundir.prompt(str(exchange.get("prompt"))) if isinstance(exchange.get("prompt"), str) else None)
        if messages is None or not isinstance(response, str):
            self.report["skipped_no_prompt"] += 1
            return None
        raw_verdict = _json_file(rundir.candidate_dir(cid) / "verdict.json")
        if not isinstance(raw_verdict, dict):
            self.report["skipped_no_verdict"] += 1
            return None
        verdict = Verdict.from_json(raw_verdict)
        if verdict.verdict == "error":
            self.report["skipped_infrastructure"] += 1
            return None
        key = str(exchange.get("key"))
        if key in self._seen:
            self.report["skipped_duplicate_request"] += 1
            return None
        self._seen.add(key)
        measures = self._measures(event, verdict, card)
        reward = reward_or_none(verdict, card, measures=measures)
        if reward is None:
            self.report["skipped_infrastructure"] += 1
            return None
        achieved = goals_mod.achieved(verdict, card, measures)
        goal = [g for g in (event.get("goal") or []) if isinstance(g, str)]
        sampling = exchange.get("sampling") if isinstance(exchange.get("sampling"), dict) else {}
        return {
            "id": f"{card.name}/{rundir.run_id}/{cid}",
            "source": {"run": rundir.run_id, "candidate": cid, "exchange": key},
            "task": card.name,
            "mode": str(event.get("mode") or config.get("mode") or ("spec" if event.get("spec") is not None else "code")),
            "messages": messages,
            "response": response,
            "generator": {"backend": str(exchange.get("backend") or model.get("backend") or config.get("backend") or "unknown"),
                          "model": str(exchange.get("model") or model.get("model") or completion.get("model") or "unknown"),
                          "model_sha256": exchange.get("model_sha256") or model.get("model_sha256"),
                          "sampling": {k: sampling.get(k) for k in ("temperature", "top_p", "max_tokens", "seed")}
                          | {"json_schema_sha256": sampling.get("json_schema_sha256"),
                             "constrained": bool(exchange.get("constrained"))},
                          "effective_defaults": json.dumps(model.get("effective_defaults") or {}, sort_keys=True)},
            "reward": goal_reward(reward.total, goal, achieved),
            "reward_total": reward.total,
            "reward_vector": dict(reward.vector),
            "tier": reward.tier,
            "verdict": {"verdict": verdict.verdict, "status": verdict.status, "stage": verdict.stage,
                        "reason": verdict.reasons[0] if verdict.reasons else ""},
            "goal": goal,
            "achieved": achieved,
            "relabeled": False,
            "relabeled_from": None,
            "logprobs": _logprobs(completion.get("logprobs")),
            "judge": float(judge) if isinstance(judge, (int, float)) and not isinstance(judge, bool) else None,
            "request_key": key,
        }

    def _measures(self, event: dict[str, Any], verdict: Any, card: Any) -> dict[str, Any]:
        measures = event.get("measures") if isinstance(event.get("measures"), dict) else None
        if measures is None:  # an older run: measure now, on the trusted rebuilt graph
            measures = {}
            if isinstance(event.get("spec"), dict):
                measures["spec"] = {k: v for k, v in event["spec"].items() if k != "notes"}
            if verdict.accepted and isinstance(verdict.graph, dict):
                from tfcaf.errors import RejectedError
                from tfcaf.evaluator.microtasks import measure_graph

                try:
                    measures.update(measure_graph(verdict.graph, card, self._real_states(card.name)))
                    self.report["micro_measured_now (old run)"] += 1
                except RejectedError:
                    self.report["micro_graph_refused"] += 1
        fitness = event.get("fitness")
        if isinstance(fitness, (int, float)) and not isinstance(fitness, bool):
            measures = {**measures, "fitness": fitness}
        return measures

    def _code_row(self, rundir: Any, card: Any, row: dict[str, Any], event: dict[str, Any]) -> dict[str, Any] | None:
        """The code-mode row of a spec-mode candidate: its rendered, vetted source as the answer to the
        code-mode prompt (see the module docstring)."""
        import hashlib

        from tfcaf.generator.prompting import generate_messages
        from tfcaf.verdict import Verdict

        cid = row["source"]["candidate"]
        source = _text(rundir.candidate_dir(cid) / "source.py")
        raw_verdict = _json_file(rundir.candidate_dir(cid) / "verdict.json")
        if not source or not source.strip() or not isinstance(raw_verdict, dict):
            self.report["as_code_skipped_no_source"] += 1
            return None
        digest = hashlib.sha256(source.strip().encode()).hexdigest()
        if (card.name, digest) in self._code_seen:
            self.report["as_code_skipped_duplicate_source"] += 1
            return None
        verdict = Verdict.from_json(raw_verdict)
        measures = {k: v for k, v in self._measures(event, verdict, card).items() if k != "spec"}
        reward = reward_or_none(verdict, card, measures=measures)
        if reward is None:
            return None
        self._code_seen.add((card.name, digest))
        achieved = goals_mod.achieved(verdict, card, measures)
        messages = [{"role": m["role"], "content": m["content"]} for m in generate_messages(card, "code", row["goal"])]
        return {**row, "id": row["id"] + "+code", "mode": "code", "messages": messages,
                "response": "```python\n" + source.strip() + "\n```",
                "generator": {**row["generator"], "rendered_from_spec": True},
                "reward": goal_reward(reward.total, row["goal"], achieved), "reward_total": reward.total,
                "reward_vector": dict(reward.vector), "tier": reward.tier, "achieved": achieved,
                "relabeled": True, "relabeled_from": row["id"], "logprobs": None,
                "request_key": row["request_key"] + "+code"}

    def _relabel(self, row: dict[str, Any], card: Any, event: dict[str, Any]) -> dict[str, Any] | None:
        from tfcaf.generator.prompting import rerender

        goal, achieved = row["goal"], row["achieved"]
        if not goal or set(goal) <= set(achieved) or not achieved:
            return None
        render = event.get("render")
        if not isinstance(render, dict) or not isinstance(render.get("first_messages"), int):
            self.report["her_skipped_no_template"] += 1
            return None
        n = render["first_messages"]
        try:
            if rerender(render, card, goal) != row["messages"][:n]:  # the template must reproduce the request
                self.report["her_skipped_not_reproducible"] += 1
                return None
            first = rerender(render, card, achieved)
        except (KeyError, TypeError, ValueError) as err:
            self.report[f"her_skipped_render ({type(err).__name__})"] += 1
            return None
        assert set(achieved) <= set(row["achieved"])  # never a goal whose check failed
        return {**row, "id": row["id"] + "+her", "messages": first + row["messages"][n:], "goal": list(achieved),
                "reward": goal_reward(row["reward_total"], achieved, row["achieved"]), "relabeled": True,
                "relabeled_from": row["id"]}


def build(store: Path, out: Path, runs: Iterable[str] | None = None, her: bool = True,
          as_code: bool = False) -> dict[str, Any]:
    """Write the dataset JSONL; returns the build report (counts). `as_code` adds the code-mode row of
    every spec-mode candidate with a vetted rendered source."""
    from tfcaf.store import write_atomic

    builder = Builder(store, her=her, as_code=as_code)
    lines = [json.dumps(row, sort_keys=True, ensure_ascii=False, allow_nan=False) for row in builder.rows(_runs(store, runs))]
    write_atomic(Path(out), "".join(line + "\n" for line in lines))
    return {"out": str(out), **dict(sorted(builder.report.items()))}


def read_rows(path: Path) -> list[dict[str, Any]]:
    """Rows of a dataset file (UsageError naming the line when one is not a JSON object)."""
    rows = []
    try:
        fh = open(path, encoding="utf-8")
    except OSError as err:
        raise UsageError(f"cannot read {path}: {err.strerror}.") from None
    with fh:
        for n, line in enumerate(fh, 1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except ValueError:
                raise UsageError(f"{path}:{n}: not a JSON object (is this a `tfcaf dataset build` file?).") from None
            if not isinstance(row, dict):
                raise UsageError(f"{path}:{n}: not a JSON object.")
            rows.append(row)
    return rows


def stats(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """Counts per task, tier, goal, generator; relabelled rows; a reward histogram; judge agreement."""
    from tfcaf.evaluator.selection import rank_agreement

    def count(values: Iterable[Any]) -> dict[str, int]:
        return dict(sorted(Counter(str(v) for v in values).items()))

    hist = [0] * HISTOGRAM_BINS
    for r in rows:
        x = r.get("reward")
        if isinstance(x, (int, float)) and math.isfinite(x):
            hist[min(HISTOGRAM_BINS - 1, max(0, int(float(x) * HISTOGRAM_BINS)))] += 1
    originals = [r for r in rows if not r.get("relabeled")]
    pairs = [(r["judge"], r["reward_total"]) for r in originals
             if isinstance(r.get("judge"), (int, float)) and isinstance(r.get("reward_total"), (int, float))]
    return {
        "rows": len(rows),
        "relabeled_rows": sum(bool(r.get("relabeled")) for r in rows),
        "per_task": count(r.get("task") for r in rows),
        "per_tier": count(r.get("tier") for r in rows),
        "per_status": count((r.get("verdict") or {}).get("status") for r in originals),
        "per_goal": count(g for r in rows for g in (r.get("goal") or [])),
        "per_achieved_goal": count(g for r in originals for g in (r.get("achieved") or [])),
        "per_generator": count(f"{(r.get('generator') or {}).get('backend')}:{(r.get('generator') or {}).get('model')}" for r in rows),
        "with_logprobs": sum(r.get("logprobs") is not None for r in rows),
        "reward_histogram": {f"[{i / HISTOGRAM_BINS:.1f},{(i + 1) / HISTOGRAM_BINS:.1f}{']' if i == HISTOGRAM_BINS - 1 else ')'}": n
                             for i, n in enumerate(hist)},
        "judge_vs_reward_spearman": rank_agreement([p[0] for p in pairs], [p[1] for p in pairs]),
        "judge_pairs": len(pairs),
    }
