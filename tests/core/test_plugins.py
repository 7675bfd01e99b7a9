"""Plugins through entry points: the example package discovered and used end to end, broken plugins
skipped with one line. Offline and in seconds: the test writes an entry-point dist-info on a temporary
sys.path entry (what `pip install` would write) and runs tfcaf in a fresh interpreter."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "examples" / "tfcaf-example-plugins"


def _dist(site: Path, name: str, entry_points: str) -> None:
    info = site / f"{name}-0.1.0.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: 0.1.0\n")
    (info / "entry_points.txt").write_text(entry_points)


def _example_entry_points() -> str:
    """The entry points the example's own pyproject.toml declares (one source of truth)."""
    import tomllib

    eps = tomllib.loads((EXAMPLE / "pyproject.toml").read_text())["project"]["entry-points"]
    return "".join(f"[{group}]\n" + "".join(f"{k} = {v}\n" for k, v in items.items()) for group, items in eps.items())


def _run(site: Path, script: str, tmp_path: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(site), str(EXAMPLE)]), "TFCAF_STORE": str(tmp_path / "store")}
    return subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env, timeout=300, cwd=tmp_path)


E2E = r"""
import json, contextlib, io, sys
from tfcaf.cli import main
def call(*argv):
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        rc = main(list(argv))
    return rc, out.getvalue()
rc, text = call("tasks", "--json"); assert rc == 0, rc
print("TASKS", json.dumps([r["name"] for r in json.loads(text)]))
print("PLUGINS", call("plugins", "--json")[1].replace("\n", " "))
print("CHECK", call("tasks", "--check", "matrix_two_peaks", "--json"))
rc, text = call("generate", "--task", "matrix_two_peaks", "--backend", "echo", "--json")
print("GENERATE", rc, text.strip().splitlines()[-1])
rc, text = call("train", "--task", "matrix_two_peaks", "--mixer", "vdn_mean", "--steps", "64", "--json")
print("TRAIN", rc, text.strip().splitlines()[-1])
rc, text = call("train", "--task", "matrix_two_peaks", "--algo", "mappo_ns", "--steps", "256", "--json")
print("TRAINPG", rc, text.strip().splitlines()[-1])
"""


def _lines(out: str) -> dict[str, str]:
    return {line.split(" ", 1)[0]: line.split(" ", 1)[1] for line in out.splitlines() if " " in line}


@pytest.mark.slow
def test_example_plugins_end_to_end(tmp_path):
    site = tmp_path / "site"
    _dist(site, "tfcaf_example_plugins", _example_entry_points())
    proc = _run(site, E2E, tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "warning" not in proc.stderr, proc.stderr
    got = _lines(proc.stdout)
    tasks = json.loads(got["TASKS"])
    assert "matrix_two_peaks" in tasks and "matrix_climbing" in tasks
    plugins = json.loads(got["PLUGINS"])
    assert {(p["kind"], tuple(p["items"])) for p in plugins} == {
        ("tasks", ("matrix_two_peaks",)), ("backends", ("echo",)), ("mixers", ("vdn_mean",)), ("algorithms", ("mappo_ns",))}
    assert got["CHECK"].startswith("(0,") and '"ok": true' in got["CHECK"]
    rc, summary = got["GENERATE"].split(" ", 1)
    gen = json.loads(summary)
    # an echo "LLM" repeats prompts: every candidate is rejected, so generate exits 1 (rejected), not 3
    assert rc == "1" and gen["backend"] == "echo" and gen["task"] == "matrix_two_peaks" and gen["llm_calls"] > 0
    assert gen["candidates"] > 0 and gen["accepted"] == 0
    assert (Path(gen["run_dir"])).is_dir()
    for key, arm in (("TRAIN", "vdn_mean"), ("TRAINPG", "mappo_ns")):
        rc, summary = got[key].split(" ", 1)
        run = json.loads(summary)
        assert rc == "0" and run["task"] == "matrix_two_peaks" and run["arm"] == arm and run["env_steps"] > 0
        assert (Path(run["run_dir"]) / "status.json").is_file()


BROKEN = r"""
from tfcaf.generator.backends import BACKENDS
from tfcaf.tasks.registry import TASKS
from tfcaf.trainer.mixers import MIXERS
from tfcaf.plugins import records
print("MIXERS", sorted(MIXERS)); print("BACKENDS", sorted(BACKENDS)); print("NTASKS", "matrix_climbing" in TASKS)
print("ERRORS", sorted(r["name"] for r in records() if r["error"]))
"""


def test_broken_plugins_cost_one_line_each_and_never_the_builtins(tmp_path):
    site = tmp_path / "site"
    (site / "badplug").mkdir(parents=True)
    (site / "badplug" / "__init__.py").write_text(
        "def boom(register):\n    raise RuntimeError('hook exploded\\nsecond line')\n"
        "def shadow(register):\n    from tfcaf.trainer.mixers import MixerSpec\n"
        "    register(MixerSpec('fine_before', 'x', lambda c, f, d: None, False))\n"
        "    register(MixerSpec('vdn', 'shadows a built-in', lambda c, f, d: None, False))\n"
        "def wrong(register):\n    register('not a spec')\n")
    _dist(site, "badplug", "[tfcaf.mixers]\nmissing = no_such_module_xyz:hook\nboom = badplug:boom\nshadow = badplug:shadow\n"
                           "[tfcaf.backends]\nwrong = badplug:wrong\n")
    proc = _run(site, BROKEN, tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    got = _lines(proc.stdout)
    assert got["MIXERS"] == str(sorted(["vdn", "qmix", "handwritten"])), "a skipped plugin registers nothing"
    assert "local" in got["BACKENDS"] and got["NTASKS"] == "True"
    assert got["ERRORS"] == str(["boom", "missing", "shadow", "wrong"])
    warnings = [line for line in proc.stderr.splitlines() if line.startswith("tfcaf: warning: plugin")]
    assert len(warnings) == 4 and "Traceback" not in proc.stderr, proc.stderr
    assert any("hook exploded second line" in w for w in warnings)
    assert any("'vdn' registered twice" in w for w in warnings)
