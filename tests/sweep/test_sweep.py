"""`tfcaf sweep` on local Ray: a grid with a failed cell, killed and resumed without repeating finished cells.

Ray start costs tens of seconds on 2 busy cores: one slow test starts it twice (the run, the resume)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tfcaf.trainer.sweep import Cell, grid


def test_grid_arms_and_cell_ids():
    cells = grid(["matrix_climbing", "matrix_penalty"], ["vd", "mappo"], ["vdn", "qmix"], 2)
    assert len(cells) == 2 * 3 * 2
    assert {c.arm for c in cells} == {"vdn", "qmix", "mappo"}
    assert len({c.cell_id for c in cells}) == len(cells)
    assert Cell("t", "vd", "tfcaf:f1", 0).cell_id == "t__tfcaf-f1__s0"


def test_missing_ray_gives_the_install_line(monkeypatch, capsys):
    from tfcaf.cli import main

    monkeypatch.setitem(sys.modules, "ray", None)
    assert main(["sweep", "--task", "matrix_climbing", "--store", "unused"]) == 3
    assert "tfcaf[sweep]" in capsys.readouterr().err


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_sweep_failed_cell_kill_and_resume(tmp_path):
    pytest.importorskip("ray", reason="ray is the optional extra tfcaf[sweep] (installed by scripts/setup.sh)")
    store = tmp_path / "store"
    argv = [sys.executable, "-m", "tfcaf.cli", "sweep", "--task", "matrix_climbing", "--mixer", "vdn", "--mixer", "no_such_mixer",
            "--seeds", "2", "--steps", "32", "--max-concurrent", "1", "--store", str(store), "--json"]
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)
    cells_dir = None
    first: Path | None = None
    deadline = time.monotonic() + 600
    try:
        while time.monotonic() < deadline and proc.poll() is None:
            found = sorted(store.glob("sweeps/*/cells/*.json"))
            done = [p for p in found if json.loads(p.read_text()).get("status") == "done"]
            if done:
                first, cells_dir = done[0], done[0].parent
                break
            time.sleep(0.5)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)  # the kill: nothing after the first finished cell is written
        proc.communicate(timeout=60)
    assert first is not None, "no cell finished before the deadline"
    before = {p.name: p.read_text() for p in cells_dir.glob("*.json")}
    assert len(before) < 4, "the sweep was killed before it finished"
    sweep_id = cells_dir.parent.name

    out = subprocess.run([sys.executable, "-m", "tfcaf.cli", "sweep", "--resume", sweep_id, "--store", str(store), "--json"],
                         capture_output=True, text=True, timeout=600)
    assert out.returncode == 1, out.stderr[-2000:]  # failed cells make the sweep exit 1, after running everything else
    summary = json.loads(out.stdout.strip().splitlines()[-1])
    assert summary["cells"] == 4 and summary["done"] == 2 and summary["failed"] == 2 and summary["pending"] == 0
    assert all("unknown mixer" in f["error"] for f in summary["failures"])
    for name, text in before.items():  # finished cells were not rerun
        if json.loads(text)["status"] == "done":
            assert (cells_dir / name).read_text() == text
    runs = sorted(store.glob("sweeps/*/store/train/matrix_climbing/*"))
    assert len(runs) == 2 and all((r / "status.json").is_file() for r in runs)
    assert summary["report"]["rows"][0]["arm"] == "vdn" and summary["report"]["rows"][0]["seeds"] == 2
    assert Path(summary["report"]["png"]).is_file() and (cells_dir.parent / "summary.json").is_file()
    assert "done" in out.stderr and "failed" in out.stderr  # progress lines


def test_sweep_file(tmp_path):
    from tfcaf.errors import UsageError
    from tfcaf.trainer.sweep import load_toml

    f = tmp_path / "grid.toml"
    f.write_text('task = ["matrix_climbing"]\nalgo = "vd"\nmixer = ["vdn", "qmix"]\nseeds = 2\nsteps = 32\n')
    conf = load_toml(f)
    assert conf["task"] == ["matrix_climbing"] and conf["algo"] == ["vd"] and conf["seeds"] == 2
    assert len(grid(conf["task"], conf["algo"], conf["mixer"], conf["seeds"])) == 4
    f.write_text('tasks = ["x"]\n')
    with pytest.raises(UsageError, match="unknown keys tasks"):
        load_toml(f)
