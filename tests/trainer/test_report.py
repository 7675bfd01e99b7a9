"""`tfcaf report`: curves over seeds, the table, IQM and the 95% interval."""

from __future__ import annotations

import json

import numpy as np

from tfcaf.cli import main
from tfcaf.trainer.report import iqm, load_run, mean_ci95


def fake_run(root, task, mixer, seed, returns, wins=None):
    d = root / "train" / task / f"run-{mixer}-{seed}"
    d.mkdir(parents=True)
    (d / "provenance.json").write_text(json.dumps({"task": task, "mixer": mixer, "seed": seed}))
    recs = [{"kind": "test", "env_steps": 100 * i + seed, "test_return_mean": r,
             "test_win_rate": None if wins is None else wins[i]} for i, r in enumerate(returns)]
    recs.insert(1, {"kind": "train", "env_steps": 50})
    (d / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in recs) + '{"kind": "te')  # cut last line
    return d


def test_iqm_and_ci():
    assert iqm(np.array([0.0, 1.0, 2.0, 100.0])) == 1.5
    assert iqm(np.array([3.0])) == 3.0
    mean, half = mean_ci95(np.array([[1.0, 2.0], [3.0, 2.0]]))
    assert mean.tolist() == [2.0, 2.0] and half[1] == 0.0 and abs(half[0] - 12.706 * np.sqrt(2) / np.sqrt(2)) < 1e-9


def test_load_run_keeps_the_last_line_per_step_after_resume(tmp_path):
    d = fake_run(tmp_path, "matrix_penalty", "vdn", 0, [0.0, 1.0])
    with open(d / "metrics.jsonl", "a") as fh:
        fh.write("\n" + json.dumps({"kind": "test", "env_steps": 100, "test_return_mean": 5.0}) + "\n")
    curve = load_run(d)
    assert curve.steps.tolist() == [0.0, 100.0] and curve.returns.tolist() == [0.0, 5.0]


def test_report_writes_png_and_table(tmp_path, capsys):
    for seed, rets in enumerate([[0, 1, 2, 2], [0, 2, 2, 2], [0, 0, 1, 2]]):
        fake_run(tmp_path, "matrix_penalty", "vdn", seed, rets)
        fake_run(tmp_path, "matrix_penalty", "qmix", seed, [r * 2 for r in rets])
    fake_run(tmp_path, "smac_3m", "qmix", 0, [0.1, 0.5, 1.2], wins=[0.0, 0.25, 0.75])
    out = tmp_path / "rep"
    assert main(["report", str(tmp_path / "train"), "--out", str(out), "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert (out / "curves.png").stat().st_size > 10_000
    rows = {(r["task"], r["mixer"]): r for r in result["rows"]}
    assert rows[("matrix_penalty", "qmix")]["seeds"] == 3
    assert rows[("matrix_penalty", "qmix")]["final_return_mean"] == 4.0
    assert rows[("matrix_penalty", "vdn")]["best_return_iqm"] == 2.0
    assert rows[("smac_3m", "qmix")]["final_win_rate_mean"] == 0.75
    assert "| smac_3m | qmix | 1 |" in (out / "table.md").read_text()
    assert main(["report", str(tmp_path / "nothing"), "--out", str(out)]) == 2
