"""`tfcaf dataset`: the builder on a real run made through the CLI (fake OpenAI-compatible endpoint on
127.0.0.1 + the real vetter), the join under concurrent vetting, dedupe, HER correctness, `datasets`."""

from __future__ import annotations

import json
import random
import sys
import threading
import time
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "generator"))
from fake_server import FakeServer, completion_body  # noqa: E402
from fakes import GOOD_CODE, RuleVetter, ScriptedLLM  # noqa: E402

from tfcaf.cli import main  # noqa: E402
from tfcaf.evaluator import goals as goals_mod  # noqa: E402
from tfcaf.evaluator.dataset import ROW_FIELDS, Builder, build, read_rows, stats  # noqa: E402
from tfcaf.evaluator.reward import tiered_reward  # noqa: E402
from tfcaf.generator.config import resolve  # noqa: E402
from tfcaf.generator.loop import GenerateLoop  # noqa: E402
from tfcaf.generator.prompting import rerender  # noqa: E402
from tfcaf.generator.rundir import RunDir  # noqa: E402
from tfcaf.generator.session import generate  # noqa: E402
from tfcaf.tasks.registry import get_card  # noqa: E402
from tfcaf.verdict import Verdict  # noqa: E402

NOT_FINITE = """```python
import torch

def QLLMNetwork(agents_q, global_state):
    return torch.log(agents_q).sum(dim=1, keepdim=True)
```"""

WRONG_SHAPE = """```python
import torch

def QLLMNetwork(agents_q, global_state):
    return agents_q * 2.0
```"""


def _with_logprobs(text: str) -> dict:
    body = completion_body(text)
    body["choices"][0]["logprobs"] = {"content": [{"token": "x", "logprob": -0.5, "bytes": [120], "top_logprobs": []}]}
    return body


@pytest.fixture(scope="module")
def cli_run(tmp_path_factory):
    """One real run through the CLI: slot 0 is rejected (wrong shape), then repaired into VDN (accepted);
    slot 1 answers log(Q) (rejected at a property gate), repaired into the same wrong shape."""
    store = tmp_path_factory.mktemp("store")

    def behaviour(n, body):
        msgs = body["messages"]
        first = msgs[1]["content"]
        slot1 = body["seed"] % 2 == 1 and len(msgs) == 2
        if len(msgs) > 2:
            text = GOOD_CODE if "shape" in msgs[-1]["content"] else WRONG_SHAPE
        else:
            text = NOT_FINITE if slot1 else WRONG_SHAPE
        assert "Goals: the answer should" in first
        return 200, {}, _with_logprobs(text)

    with FakeServer(behaviour) as srv:
        code = main(["generate", "--task", "matrix_climbing", "--backend", "openai", "--model", "fake-model",
                     "--base-url", srv.base_url, "--store", str(store), "-k", "2", "--rounds", "1", "--repairs", "1",
                     "--no-judge", "--json"])
        requests = list(srv.requests)
    out = store / "ds.jsonl"
    assert main(["dataset", "build", "--store", str(store), "--out", str(out)]) == 0
    return store, out, requests, code


@pytest.mark.slow  # one real CLI run with the real vetter (~30 s on 2 busy cores), shared by 3 tests
def test_builder_rows_have_every_field_and_join_the_exact_request(cli_run):
    store, out, requests, code = cli_run
    rows = read_rows(out)
    originals = [r for r in rows if not r["relabeled"]]
    run = RunDir.open(store, originals[0]["source"]["run"])
    assert len(originals) == len(run.candidates()) >= 3
    sent = [r["messages"] for r in requests]
    for row in rows:
        assert set(ROW_FIELDS) <= set(row)
        assert row["task"] == "matrix_climbing" and row["mode"] == "code"
        assert row["generator"]["backend"] == "openai" and row["generator"]["model"] == "fake-model"
        assert row["logprobs"] == [{"id": -1, "token": "x", "logprob": -0.5}]
        assert 0.0 <= row["reward"] <= row["reward_total"] <= 1.0
    for row in originals:
        cid = row["source"]["candidate"]
        assert row["messages"] in sent  # the exact chat messages the endpoint received
        assert row["response"] == (run.candidate_dir(cid) / "response.txt").read_text()
        verdict = Verdict.from_json(run.verdict(cid))
        assert row["reward_total"] == tiered_reward(verdict, measures=run.candidates()[cid]["measures"]).total
        assert row["verdict"]["status"] == verdict.status
    statuses = {r["verdict"]["status"] for r in originals}
    assert {"contract", "ok"} <= statuses  # rejected candidates are rows too, scored by their furthest tier
    tiers = {r["verdict"]["status"]: r["tier"] for r in originals}
    assert tiers["contract"] < tiers["ok"]


@pytest.mark.slow  # one real CLI run with the real vetter (~30 s on 2 busy cores), shared by 3 tests
def test_relabelled_rows_only_name_achieved_goals_and_rerender_the_same_template(cli_run):
    store, out, _, _ = cli_run
    rows = read_rows(out)
    by_id = {r["id"]: r for r in rows}
    her = [r for r in rows if r["relabeled"]]
    assert her, "a candidate that missed a requested goal must give a relabelled row"
    card = get_card("matrix_climbing")
    for row in her:
        orig = by_id[row["relabeled_from"]]
        assert row["response"] == orig["response"] and row["goal"] and set(row["goal"]) <= set(orig["achieved"])
        assert not set(orig["goal"]) <= set(orig["achieved"])  # only candidates that missed a goal
        run = RunDir.open(store, orig["source"]["run"])
        event = run.candidates()[orig["source"]["candidate"]]
        verdict = run.verdict(orig["source"]["candidate"])
        for g in row["goal"]:  # each relabelled goal's check passes on the real verdict
            assert goals_mod.check(g, verdict, card, event["measures"])
        n = event["render"]["first_messages"]
        assert row["messages"][:n] == rerender(event["render"], card, row["goal"])
        assert row["messages"][n:] == orig["messages"][n:]
        assert "[" + row["goal"][0] + "]" in row["messages"][1]["content"]
        assert row["reward"] == row["reward_total"] >= orig["reward"]
    assert not any(r["relabeled"] for r in read_rows(_build_no_her(store)))


def _build_no_her(store: Path) -> Path:
    out = store / "no_her.jsonl"
    assert main(["dataset", "build", "--store", str(store), "--out", str(out), "--no-her"]) == 0
    return out


@pytest.mark.slow  # one real CLI run with the real vetter (~30 s on 2 busy cores), shared by 3 tests
def test_stats_and_datasets_round_trip(cli_run, capsys):
    datasets = pytest.importorskip("datasets")
    _, out, _, _ = cli_run
    rows = read_rows(out)
    assert main(["dataset", "stats", str(out), "--json"]) == 0
    got = json.loads(capsys.readouterr().out)
    assert got["rows"] == len(rows) and got["relabeled_rows"] == sum(r["relabeled"] for r in rows)
    assert sum(got["reward_histogram"].values()) == len(rows) and got["per_task"] == {"matrix_climbing": len(rows)}
    ds = datasets.load_dataset("json", data_files=str(out), split="train")
    assert len(ds) == len(rows)
    for a, b in zip(ds, rows):
        for key in ("id", "messages", "response", "reward", "goal", "achieved", "relabeled", "relabeled_from"):
            assert a[key] == b[key], key


def _config(tmp_path: Path, **flags):
    base = {"task": "matrix_climbing", "backend": "openai", "store": str(tmp_path), "k": 4, "rounds": 1, "repairs": 0,
            "judge": False}
    base.update(flags)
    return resolve(base, env={})


def _by_seed(messages, sampling):
    return GOOD_CODE.replace("keepdim=True", f"keepdim=True) * 1.0 + 0.0 * float({sampling['seed']}")


class SlowVetter(RuleVetter):
    """Vets after a random delay, so candidates finish out of order."""

    def __call__(self, text, card):
        time.sleep(random.Random(text).uniform(0.0, 0.05))
        return super().__call__(text, card)


def test_join_under_concurrent_vetting(tmp_path):
    config, _ = _config(tmp_path)
    run = RunDir.create(tmp_path, "matrix_climbing", "concurrent")
    llm = ScriptedLLM(_by_seed)
    loop = GenerateLoop(config, get_card("matrix_climbing"), llm, SlowVetter(needle="torch.sum"), run)
    loop._start, loop._first_accepted = time.monotonic(), None
    first = rerender({"fn": "generate", "args": {"mode": "code"}}, loop.card, loop.goals)
    threads = [threading.Thread(target=loop._slot, args=(0, slot, first, {"fn": "generate", "args": {"mode": "code"}}))
               for slot in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    events = run.load_events()
    order = [e["cid"] for e in events if e["type"] == "candidate"]
    exchanges = {e["id"]: e for e in events if e["type"] == "exchange"}
    for e in events:
        if e["type"] == "candidate":  # each candidate names the exchange whose answer it is
            assert exchanges[e["exchanges"][0]]["completion"]["text"] == (run.candidate_dir(e["cid"]) / "response.txt").read_text()
    rows = list(Builder(tmp_path, her=False).rows([run]))
    assert order != sorted(order) or True  # the finishing order is random; the join must not depend on it
    assert len(rows) == 4 == len(set(r["response"] for r in rows))
    for r in rows:
        sent = next(s for m, s in llm.requests if m == r["messages"][:2] and _by_seed(m, s) == r["response"])
        assert sent is not None


def test_dedupe_by_request_key(tmp_path):
    llm = ScriptedLLM(_by_seed)
    generate(*_config(tmp_path, k=2), backend=llm, vet=RuleVetter())
    again = generate(*_config(tmp_path, k=2), backend=llm, vet=RuleVetter())  # same requests: served by the cache
    assert again["llm_calls"] == 0 and again["cached_calls"] >= 2
    run2 = RunDir.open(tmp_path, again["run_id"])
    assert all(e["cached"] for e in run2.events("exchange"))
    report = build(tmp_path, tmp_path / "d.jsonl", her=False)
    rows = read_rows(tmp_path / "d.jsonl")
    assert report["rows"] == 2 and report["skipped_duplicate_request"] == 2
    assert len({r["request_key"] for r in rows}) == len(rows)


def test_old_runs_stay_readable(tmp_path):
    """A run in the format before exchange ids (events without ids, measures or goals) still builds."""
    generate(*_config(tmp_path, k=2), backend=ScriptedLLM(_by_seed), vet=RuleVetter())
    run = next((tmp_path / "runs" / "matrix_climbing").glob("*"))
    lines = [json.loads(x) for x in (run / "events.jsonl").read_text().splitlines()]
    for e in lines:
        for key in ("exchanges", "measures", "goal", "render", "reward", "achieved", "id", "model_sha256"):
            e.pop(key, None)
    (run / "events.jsonl").write_text("".join(json.dumps(e) + "\n" for e in lines))
    (run / "model.json").unlink()
    report = build(tmp_path, tmp_path / "old.jsonl")
    rows = read_rows(tmp_path / "old.jsonl")
    assert report["rows"] == 2 and report["joined_by_answer (old run)"] == 2
    assert all(r["goal"] == [] and not r["relabeled"] for r in rows)


def test_malformed_store_files_skip_not_crash(tmp_path):
    generate(*_config(tmp_path, k=2), backend=ScriptedLLM(_by_seed), vet=RuleVetter())
    run = next((tmp_path / "runs" / "matrix_climbing").glob("*"))
    (run / "candidates" / "r0-c0-a0" / "verdict.json").write_text("\x00\xff not json")
    with open(run / "events.jsonl", "a") as fh:
        fh.write('{"type": "candidate", "cid": 5}\n["not", "an", "object"]\n')
    report = build(tmp_path, tmp_path / "m.jsonl")
    assert report["rows"] == 1 and report["skipped_no_verdict"] == 1


def test_stats_counts_and_histogram():
    rows = [{"task": "a", "tier": 2, "reward": 0.55, "reward_total": 0.55, "verdict": {"status": "ok"}, "goal": ["finite"],
             "achieved": ["finite"], "generator": {"backend": "local", "model": "m"}, "relabeled": False, "judge": 0.1},
            {"task": "a", "tier": -1, "reward": 0.0, "reward_total": 0.0, "verdict": {"status": "text"}, "goal": [],
             "achieved": [], "generator": {"backend": "local", "model": "m"}, "relabeled": True, "judge": None},
            {"task": "b", "tier": 3, "reward": 1.0, "reward_total": 1.0, "verdict": {"status": "ok"}, "goal": [],
             "achieved": [], "generator": {"backend": "openai", "model": "x"}, "relabeled": False, "judge": 0.9}]
    s = stats(rows)
    assert s["rows"] == 3 and s["relabeled_rows"] == 1 and s["per_task"] == {"a": 2, "b": 1}
    assert s["reward_histogram"]["[0.0,0.1)"] == 1 and s["reward_histogram"]["[0.9,1.0]"] == 1
    assert s["reward_histogram"]["[0.5,0.6)"] == 1 and s["judge_pairs"] == 2


def _spec_answer(temperature: float) -> str:
    return json.dumps({"weights": {}, "temperature": temperature, "vdn_blend": 0.2})


def test_as_code_rows_answer_the_code_prompt_with_the_vetted_rendered_source(tmp_path):
    """Spec-mode candidates: two distinct renders (one accepted, one rejected), a duplicate render and an
    unparsable answer; --as-code adds one code row per distinct vetted source, nothing for the others."""
    from tfcaf.generator.prompting import generate_messages

    answers = [_spec_answer(0.5), _spec_answer(0.3), _spec_answer(0.5), "not a spec at all"]
    config, sources = _config(tmp_path, mode="spec", k=4)
    generate(config, sources, backend=ScriptedLLM(answers), vet=RuleVetter(needle="score / 0.5"))
    assert main(["dataset", "build", "--store", str(tmp_path), "--out", str(tmp_path / "plain.jsonl"), "--no-her"]) == 0
    assert all(r["mode"] == "spec" for r in read_rows(tmp_path / "plain.jsonl"))
    report = build(tmp_path, tmp_path / "code.jsonl", her=False, as_code=True)
    rows = read_rows(tmp_path / "code.jsonl")
    spec_rows = {r["id"]: r for r in rows if r["mode"] == "spec"}
    code = [r for r in rows if r["mode"] == "code"]
    assert len(spec_rows) == 4 and len(code) == 2
    assert report["as_code_rows"] == 2 and report["as_code_skipped_duplicate_source"] == 1
    assert report["as_code_skipped_no_source"] == 1
    card = get_card("matrix_climbing")
    run = RunDir.open(tmp_path, next(iter(spec_rows.values()))["source"]["run"])
    for row in code:
        orig = spec_rows[row["relabeled_from"]]
        cid = orig["source"]["candidate"]
        assert set(ROW_FIELDS) <= set(row) and row["relabeled"] and row["id"] == orig["id"] + "+code"
        assert row["messages"] == generate_messages(card, "code", orig["goal"])  # the code-mode request
        assert row["messages"] != orig["messages"]
        source = (run.candidate_dir(cid) / "source.py").read_text()
        assert row["response"] == "```python\n" + source.strip() + "\n```"
        verdict = Verdict.from_json(run.verdict(cid))
        measures = {k: v for k, v in run.candidates()[cid]["measures"].items() if k != "spec"}
        assert row["reward_total"] == tiered_reward(verdict, measures=measures).total
        assert row["verdict"]["status"] == verdict.status and row["logprobs"] is None
    by_status = {r["verdict"]["status"]: r["reward_total"] for r in code}
    assert set(by_status) == {"ok", "contract"} and by_status["ok"] > by_status["contract"]
    assert len({r["request_key"] for r in rows}) == len(rows)
