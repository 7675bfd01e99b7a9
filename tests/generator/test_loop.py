"""Control flow of the coder-evaluator loop, with a scripted LLM and a rule-based vetter (fakes.py)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))
from fakes import BAD_CODE, GOOD_CODE, RuleVetter, ScriptedLLM, judge_answer  # noqa: E402

from tfcaf.errors import InfrastructureError  # noqa: E402
from tfcaf.generator.config import resolve  # noqa: E402
from tfcaf.generator.rundir import RunDir  # noqa: E402
from tfcaf.generator.session import generate  # noqa: E402


def _config(tmp_path: Path, **flags):
    base = {"task": "matrix_climbing", "backend": "openai", "store": str(tmp_path), "k": 2, "rounds": 2, "repairs": 1}
    base.update(flags)
    return resolve(base, env={})


def _answers(first: str, repaired: str, judge: str | None = None):
    def answer(messages, sampling):
        if "strict reviewer" in messages[0]["content"]:
            return judge if judge is not None else judge_answer()
        return first if len(messages) == 2 else repaired
    return answer


def test_repair_feeds_the_failure_back_and_is_bounded(tmp_path):
    llm = ScriptedLLM(_answers(BAD_CODE, BAD_CODE))
    summary = generate(*_config(tmp_path, repairs=2, judge=False), backend=llm, vet=RuleVetter())
    assert summary["accepted"] == 0 and summary["selected"] is None
    # 2 rounds x 2 slots x (1 + 2 repairs), never more
    assert summary["llm_calls"] == 12 and summary["candidates"] == 12
    repair = llm.requests[1][0]
    assert repair[-2] == {"role": "assistant", "content": BAD_CODE}
    assert "shape [B, 1]" in repair[-1]["content"] and "Counterexample" in repair[-1]["content"]


def test_accepted_after_repair_is_selected_and_seeds_the_next_round(tmp_path):
    llm = ScriptedLLM(_answers(BAD_CODE, GOOD_CODE, judge_answer(9, "use the alive flag")))
    summary = generate(*_config(tmp_path), backend=llm, vet=RuleVetter())
    assert summary["accepted"] == 4 and summary["selected"] == "r0-c0-a1"
    refine = [m for m, _ in llm.coder_requests() if "best answer so far" in m[-1]["content"]]
    assert refine, "round 2 must be seeded with the selected candidate"
    assert "use the alive flag" in refine[0][-1]["content"] and "torch.sum(agents_q" in refine[0][-1]["content"]
    run = RunDir(Path(summary["run_dir"]))
    assert run.selected() == "r0-c0-a1"
    assert (run.candidate_dir("r0-c0-a0") / "verdict.json").is_file()
    assert json.loads((run.path / "summary.json").read_text())["accepted"] == 4


def test_json_summary_has_the_promised_fields(tmp_path):
    summary = generate(*_config(tmp_path, k=1, rounds=1, judge=False), backend=ScriptedLLM([GOOD_CODE]), vet=RuleVetter())
    for key in ("run_id", "run_dir", "accepted", "selected", "llm_calls", "tokens"):
        assert key in summary
    assert summary["tokens"] == {"prompt": 10, "completion": 5, "total": 15}


def test_malformed_judge_is_retried_once_then_ignored(tmp_path):
    llm = ScriptedLLM(_answers(GOOD_CODE, GOOD_CODE, judge="I think it is great!"))
    summary = generate(*_config(tmp_path, k=1, rounds=1), backend=llm, vet=RuleVetter())
    assert summary["selected"] == "r0-c0-a0"
    assert summary["calls_by_purpose"]["judge"] == 2
    crit = list(RunDir(Path(summary["run_dir"])).events("critique"))
    assert crit[0]["critique"] is None and "ignored after a retry" in crit[0]["reason"]


def test_rerun_costs_zero_calls(tmp_path):
    llm = ScriptedLLM(_answers(BAD_CODE, GOOD_CODE))
    first = generate(*_config(tmp_path), backend=llm, vet=RuleVetter())
    again = generate(*_config(tmp_path), backend=llm, vet=RuleVetter())
    assert first["llm_calls"] > 0 and again["llm_calls"] == 0
    assert again["cached_calls"] == first["llm_calls"] and again["selected"] == first["selected"]


def test_no_cache_asks_again(tmp_path):
    llm = ScriptedLLM(_answers(GOOD_CODE, GOOD_CODE))
    generate(*_config(tmp_path, k=1, rounds=1, judge=False), backend=llm, vet=RuleVetter())
    again = generate(*_config(tmp_path, k=1, rounds=1, judge=False, cache=False), backend=llm, vet=RuleVetter())
    assert again["llm_calls"] == 1


def test_resume_does_not_duplicate_or_revet(tmp_path):
    llm = ScriptedLLM(_answers(BAD_CODE, GOOD_CODE))
    vetter = RuleVetter()
    summary = generate(*_config(tmp_path, cache=False), backend=llm, vet=vetter)
    run = RunDir(Path(summary["run_dir"]))
    # simulate a kill -9 mid-run: drop the tail of the log, leave a torn line
    lines = run.events_path.read_text().splitlines(keepends=True)
    cut = next(i for i, line in enumerate(lines) if '"cid": "r1-c0-a0"' in line and '"type": "candidate"' in line)
    run.events_path.write_text("".join(lines[:cut]) + '{"type": "candid')
    kept = RunDir(run.path)
    kept_exchanges = len(list(kept.events("exchange")))
    kept_candidates = len(list(kept.events("candidate")))
    first_calls, first_vets = len(llm.requests), len(vetter.calls)
    resumed = generate(None, resume=str(run.path), backend=llm, vet=vetter)
    # only the work lost with the log's tail is redone: no answer asked twice, no candidate vetted twice
    assert len(llm.requests) - first_calls == first_calls - kept_exchanges
    assert len(vetter.calls) - first_vets == 8 - kept_candidates
    ids = [e["cid"] for e in run.events("candidate")]
    assert len(ids) == len(set(ids)) == 8
    assert resumed["selected"] == summary["selected"] and resumed["accepted"] == summary["accepted"]


def test_vetting_infrastructure_errors_stop_the_run_with_exit_3(tmp_path):
    with pytest.raises(InfrastructureError, match="vetting failed twice"):
        generate(*_config(tmp_path, judge=False), backend=ScriptedLLM([GOOD_CODE]), vet=RuleVetter(error=True))
    run_dirs = list((tmp_path / "runs" / "matrix_climbing").iterdir())
    run = RunDir(run_dirs[0])
    assert any(e["type"] == "run_aborted" for e in run.load_events())
    assert len(list(run.events("candidate"))) == 2  # nothing lost: both candidates recorded


def test_time_budget_stops_new_requests(tmp_path):
    ticks = iter(range(0, 10_000, 100))
    from tfcaf.generator import loop as loop_mod

    cfg, src = _config(tmp_path, k=3, rounds=3, judge=False, time_budget_s=150)
    original = loop_mod.GenerateLoop.__init__

    def init(self, *a, **kw):
        kw["clock"] = lambda: float(next(ticks))
        original(self, *a, **kw)

    loop_mod.GenerateLoop.__init__ = init
    try:
        summary = generate(cfg, src, backend=ScriptedLLM([GOOD_CODE]), vet=RuleVetter())
    finally:
        loop_mod.GenerateLoop.__init__ = original
    assert summary["stopped"] == "time budget" and summary["candidates"] < 9 and summary["selected"]


def test_spec_mode_renders_and_vets_the_rendered_source(tmp_path):
    spec = json.dumps({"weights": {}, "temperature": 1.0, "vdn_blend": 0.5})
    llm = ScriptedLLM(_answers(spec, spec))
    vetter = RuleVetter(needle="torch.softmax")
    summary = generate(*_config(tmp_path, mode="spec", k=1, rounds=1, judge=False), backend=llm, vet=vetter)
    assert summary["selected"] == "r0-c0-a0"
    assert "def QLLMNetwork" in vetter.calls[0] and "0.5 + 0.5 * weights" in vetter.calls[0]
    assert llm.requests[0][1]["json_schema"]["type"] == "object"


def test_spec_mode_bad_json_is_a_rejected_candidate_and_repaired(tmp_path):
    spec = json.dumps({"weights": {}, "temperature": 1.0, "vdn_blend": 0.5})
    llm = ScriptedLLM(_answers('{"weights": {}, "temperature": 1.0', spec))
    vetter = RuleVetter(needle="torch.softmax")
    summary = generate(*_config(tmp_path, mode="spec", k=1, rounds=1, judge=False), backend=llm, vet=vetter)
    assert summary["selected"] == "r0-c0-a1" and len(vetter.calls) == 1
    assert "not valid JSON" in llm.requests[1][0][-1]["content"]


def test_fitness_hook_resolves_to_the_trainer():
    from tfcaf.generator.session import FITNESS_HOOK, fitness_hook
    from tfcaf.trainer.fitness import short_training_fitness

    assert fitness_hook(0) is None
    assert fitness_hook(100) is short_training_fitness
    assert FITNESS_HOOK.endswith(":short_training_fitness")


def test_fitness_enters_the_selection(tmp_path):
    from tfcaf.generator.loop import GenerateLoop
    from tfcaf.tasks.registry import get_card

    config, _ = _config(tmp_path, k=2, rounds=1, judge=False, fitness_steps=10)
    run = RunDir.create(tmp_path, "matrix_climbing", "fit-run")
    calls = []

    def fitness(graph, card, steps, seed):
        calls.append(steps)
        return 0.9 if len(calls) == 2 else 0.1

    result = GenerateLoop(config, get_card("matrix_climbing"), ScriptedLLM([GOOD_CODE]), RuleVetter(), run,
                          fitness=fitness).run()
    assert calls == [10, 10] and result.selected == "r0-c1-a0"
    assert all("fitness" in c.score["measured"] for c in result.candidates)


def test_bad_backend_settings_fail_before_a_run_directory_exists(tmp_path):
    from tfcaf.errors import UsageError

    config, sources = resolve({"task": "matrix_climbing", "backend": "openai", "store": str(tmp_path)}, env={})
    with pytest.raises(UsageError, match="API key|--model"):
        generate(config, sources)
    assert not (tmp_path / "runs").exists()
