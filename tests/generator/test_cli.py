"""The generator's verbs through the real command line: exit codes, --show-config, approve / approved / review."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _cli(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "tfcaf.cli", *args], capture_output=True, text=True, timeout=300,
                          cwd=str(ROOT), env={**os.environ, **(env or {})})


def test_show_config_says_where_settings_came_from(tmp_path):
    out = _cli("generate", "--task", "smac_3m", "-k", "4", "--show-config", "--json", env={"TFCAF_ROUNDS": "3"})
    assert out.returncode == 0, out.stderr
    rows = {r["setting"]: r for r in json.loads(out.stdout)}
    assert rows["k"]["source"] == "flag" and rows["k"]["value"] == 4
    assert rows["rounds"]["source"] == "env TFCAF_ROUNDS" and rows["backend"]["source"] == "default"
    assert rows["mode (resolved)"]["value"] == "spec" and rows["k"]["help"]


def test_usage_errors_exit_2_with_one_line(tmp_path):
    for args in (["generate", "--task", "nope"], ["generate", "--task", "smac_3m", "--mode", "prose"],
                 ["generate", "--resume", "nothing-here", "--store", str(tmp_path)],
                 ["generate", "--resume", "x", "-k", "2"],
                 ["approve", "no-colon", "--store", str(tmp_path)], ["review", "missing", "--store", str(tmp_path)]):
        out = _cli(*args)
        assert out.returncode == 2, (args, out.stderr)
        assert "Traceback" not in out.stderr and out.stderr.count("tfcaf: error:") == 1


def test_approve_review_and_approved_verbs(real_run, tmp_path):
    store, summary = real_run
    run_id, chosen = summary["run_id"], summary["selected"]
    out = _cli("approve", f"{run_id}:r0-c0-a0", "--store", str(store))
    assert out.returncode == 1 and "not accepted" in out.stderr
    out = _cli("approve", f"{run_id}:{chosen}", "--name", "cli-approved", "--store", str(store))
    assert out.returncode == 0, out.stderr
    assert "tfcaf:cli-approved" in out.stdout
    out = _cli("approved", "--store", str(store), "--json")
    assert [m["name"] for m in json.loads(out.stdout)] == ["cli-approved"]
    html = tmp_path / "r.html"
    out = _cli("review", run_id, "--store", str(store), "--html", str(html))
    assert out.returncode == 0, out.stderr
    assert chosen in out.stdout and "approved:cli-approved" in out.stdout and html.is_file()
    out = _cli("review", run_id, "--store", str(store), "--diff", "r0-c0-a0", "r0-c1-a0")
    assert out.returncode == 0 and "--- r0-c0-a0" in out.stdout
    out = _cli("review", run_id, "--store", str(store), "--json")
    assert {r["cid"] for r in json.loads(out.stdout)} == {"r0-c0-a0", "r0-c0-a1", "r0-c1-a0"}


def test_generate_approve_train_end_to_end(real_run, tmp_path):
    """The approved graph trains: `tfcaf train --mixer tfcaf:NAME` (a few hundred steps on matrix_climbing)."""
    store, summary = real_run
    out = _cli("approve", f"{summary['run_id']}:r0-c1-a0", "--name", "for-training", "--store", str(store))
    assert out.returncode == 0, out.stderr
    out = _cli("train", "--task", "matrix_climbing", "--mixer", "tfcaf:for-training", "--steps", "200", "--store",
               str(store), "--json")
    assert out.returncode == 0, out.stderr[-3000:]
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert result["env_steps"] >= 200
