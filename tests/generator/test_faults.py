"""Faults end to end: the endpoint dies mid-run, a closed port, and hostile or broken answers — each ends
in a clear message (or a rejected candidate with a reason) with nothing lost. Real vetter."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))
from fake_server import FakeServer, closed_port, completion_body  # noqa: E402
from fakes import BROKEN, GOOD_CODE, WEIGHTED  # noqa: E402

from tfcaf.errors import InfrastructureError  # noqa: E402
from tfcaf.generator.config import resolve  # noqa: E402
from tfcaf.generator.rundir import RunDir  # noqa: E402
from tfcaf.generator.session import generate  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]


def _cli(*args: str, env: dict | None = None, timeout: int = 240) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "tfcaf.cli", *args], capture_output=True, text=True, timeout=timeout,
                          env={**os.environ, **(env or {})}, cwd=str(ROOT))


def test_server_killed_mid_run_ends_with_exit_3_and_keeps_what_was_done(tmp_path):
    state = {"srv": None}

    def behaviour(n, body):
        if n == 2:
            threading.Thread(target=state["srv"].stop, daemon=True).start()
        return 200, {}, completion_body(GOOD_CODE)

    with FakeServer(behaviour) as srv:
        state["srv"] = srv
        config, sources = resolve({"task": "matrix_climbing", "backend": "openai", "model": "fake-model",
                                   "base_url": srv.base_url, "store": str(tmp_path), "k": 3, "rounds": 1,
                                   "judge": False, "max_retries": 1, "timeout_s": 5}, env={})
        with pytest.raises(InfrastructureError, match="cannot connect|no answer"):
            generate(config, sources)
    run = RunDir(next((tmp_path / "runs" / "matrix_climbing").iterdir()))
    assert [e["cid"] for e in run.events("candidate")] == ["r0-c0-a0", "r0-c1-a0"]
    assert any(e["type"] == "run_aborted" for e in run.load_events())
    assert (run.candidate_dir("r0-c1-a0") / "verdict.json").is_file()


def test_closed_port_cli_exit_3_one_line(tmp_path):
    out = _cli("generate", "--task", "matrix_climbing", "--backend", "openai", "--model", "m", "--base-url",
               f"http://127.0.0.1:{closed_port()}/v1", "--store", str(tmp_path), "--max-retries", "1", "--json")
    assert out.returncode == 3, out.stderr
    lines = [line for line in out.stderr.splitlines() if line.startswith("tfcaf: error:")]
    assert len(lines) == 1 and "cannot connect" in lines[0] and "Traceback" not in out.stderr


@pytest.mark.parametrize("answer, status", [
    ("", "text"),
    ("```python\nimport torch\n\ndef QLLMNetwork(agents_q, global_state):\n    return torch.sum(agents_q, dim=1, keep", "text"),
    ("I cannot help with that, but credit assignment is fascinating.", "text"),
    (GOOD_CODE + "\n\nAlternatively:\n\n" + WEIGHTED, "text"),
])
def test_broken_answers_become_rejected_candidates_with_reasons(tmp_path, answer, status):
    def behaviour(n, body):
        return 200, {}, completion_body(answer, finish="length" if "keep" in answer else "stop")

    with FakeServer(behaviour) as srv:
        config, sources = resolve({"task": "matrix_climbing", "backend": "openai", "model": "fake-model",
                                   "base_url": srv.base_url, "store": str(tmp_path), "k": 1, "rounds": 1,
                                   "repairs": 1, "judge": False}, env={})
        summary = generate(config, sources)
    assert summary["accepted"] == 0 and summary["selected"] is None and summary["candidates"] == 2
    run = RunDir(Path(summary["run_dir"]))
    verdict = run.verdict("r0-c0-a0")
    assert verdict["verdict"] == "rejected" and verdict["status"] == status and verdict["reasons"]
    assert verdict["reasons"][0] in srv.requests[1]["messages"][-1]["content"]  # fed back in the repair


def _serve_matrix(delay: float):
    """Answers: first request of each slot BROKEN, repairs GOOD, every other slot WEIGHTED."""
    def behaviour(n, body):
        msgs = body["messages"]
        if len(msgs) > 2:
            text = GOOD_CODE
        else:
            text = BROKEN if body["seed"] % 2 else WEIGHTED
        return 200, {}, ("sleep", delay, completion_body(text))
    return behaviour


@pytest.mark.slow
def test_kill_9_then_resume_loses_and_duplicates_nothing(tmp_path):
    with FakeServer(_serve_matrix(0.4)) as srv:
        args = ["generate", "--task", "matrix_climbing", "--backend", "openai", "--model", "fake-model",
                "--base-url", srv.base_url, "--store", str(tmp_path), "-k", "3", "--rounds", "2", "--no-judge", "--json"]
        proc = subprocess.Popen([sys.executable, "-m", "tfcaf.cli", *args], cwd=str(ROOT), stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, start_new_session=True)
        deadline = time.monotonic() + 180
        events = None
        while time.monotonic() < deadline:
            found = list((tmp_path / "runs" / "matrix_climbing").glob("*/events.jsonl")) if (tmp_path / "runs").exists() else []
            if found and sum('"type": "candidate"' in line for line in found[0].read_text().splitlines()) >= 3:
                events = found[0]
                break
            time.sleep(0.2)
        assert events is not None, "the run never produced 3 candidates"
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
        run = RunDir(events.parent)
        before = [e["cid"] for e in run.events("candidate")]
        asked_before = len(srv.requests)
        out = _cli("generate", "--resume", run.run_id, "--store", str(tmp_path), "--json")
        assert out.returncode == 0, out.stderr
        summary = json.loads(out.stdout.strip().splitlines()[-1])
    after = [e["cid"] for e in run.events("candidate")]
    assert after[: len(before)] == before and len(after) == len(set(after))
    slots = {cid.rsplit("-a", 1)[0] for cid in after}
    assert slots == {f"r{r}-c{c}" for r in range(2) for c in range(3)}
    assert summary["resumed"] and summary["selected"] and summary["run_id"] == run.run_id
    # answers recorded before the kill were not asked again
    assert len(srv.requests) - asked_before == summary["llm_calls"]
    assert summary["llm_calls"] + summary["cached_calls"] >= len(after)
