"""Integration: `tfcaf generate` through the openai SDK against a real OpenAI-compatible server
(xllamacpp's built-in server running SmolLM2) in both modes, with the real vetter; and the embedded
default in process."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))
from llm_server import LLMServer, require_llm  # noqa: E402

from tfcaf.generator.rundir import RunDir  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.llm


def _generate(*args: str, timeout: int = 420) -> tuple[int, dict, str]:
    out = subprocess.run([sys.executable, "-m", "tfcaf.cli", "generate", *args, "--json"], capture_output=True,
                         text=True, timeout=timeout, cwd=str(ROOT), env={**os.environ, "OPENAI_API_KEY": ""})
    summary = json.loads(out.stdout.strip().splitlines()[-1]) if out.stdout.strip() else {}
    return out.returncode, summary, out.stderr


def test_spec_mode_through_the_openai_sdk(tmp_path):
    with LLMServer() as url:
        rc, summary, err = _generate("--task", "smac_3m", "--backend", "openai", "--base-url", url, "--model", "smollm2",
                                     "--mode", "spec", "-k", "2", "--rounds", "1", "--no-judge", "--store", str(tmp_path))
    assert rc == 0, err[-3000:]
    assert summary["accepted"] >= 1 and summary["selected"] and summary["llm_calls"] >= 2
    assert summary["tokens"]["prompt"] > 0 and summary["tokens"]["completion"] > 0
    run = RunDir(Path(summary["run_dir"]))
    exchanges = list(run.events("exchange"))
    assert exchanges and all(e["constrained"] for e in exchanges)  # schema sent as response_format
    assert "def QLLMNetwork" in run.source(summary["selected"])


def test_code_mode_through_the_openai_sdk(tmp_path):
    with LLMServer() as url:
        rc, summary, err = _generate("--task", "matrix_climbing", "--backend", "openai", "--base-url", url, "--model",
                                     "smollm2", "--mode", "code", "-k", "1", "--rounds", "1", "--repairs", "1",
                                     "--max-tokens", "300", "--store", str(tmp_path))
    # SmolLM2-135M rarely writes a working function free-form: either outcome is fine, but every
    # answer must be vetted, recorded with a verdict, and a rejected one repaired with its failure.
    assert rc in (0, 1), err[-3000:]
    assert summary["candidates"] >= 1 and summary["llm_calls"] >= summary["candidates"]
    run = RunDir(Path(summary["run_dir"]))
    for cid, event in run.candidates().items():
        verdict = run.verdict(cid)
        assert verdict["verdict"] in ("accepted", "rejected")
        assert verdict["verdict"] == "accepted" or verdict["reasons"]
    if run.verdict("r0-c0-a0")["verdict"] == "rejected":
        assert "r0-c0-a1" in run.candidates()


@pytest.mark.slow
def test_readme_command_offline_on_the_embedded_model(tmp_path):
    """`tfcaf generate --task smac_3m` with every default: embedded model, spec mode, no network."""
    require_llm()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OPENAI_", "TFCAF_"))}
    env.update({"TFCAF_STORE": str(tmp_path), "TFCAF_THREADS": "1"})
    out = subprocess.run([sys.executable, "-m", "tfcaf.cli", "generate", "--task", "smac_3m", "--json"],
                         capture_output=True, text=True, timeout=600, cwd=str(tmp_path), env=env)
    assert out.returncode == 0, out.stderr[-3000:]
    summary = json.loads(out.stdout.strip().splitlines()[-1])
    assert summary["backend"] == "local" and summary["mode"] == "spec"
    assert summary["accepted"] >= 1 and summary["selected"]
    verdict = RunDir(Path(summary["run_dir"])).verdict(summary["selected"])
    assert verdict["verdict"] == "accepted" and verdict["status"] == "ok" and verdict["graph"]
