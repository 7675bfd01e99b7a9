"""The algorithm registry through the run loop and the CLI: config layers, reproducibility row by row,
learning within a generous budget, resume, and the old `--mixer` CLI next to `--algo`."""

from __future__ import annotations

import json

import pytest
import torch

from tfcaf.cli import main
from tfcaf.tasks.registry import TASKS
from tfcaf.trainer.algos import ALGOS
from tfcaf.trainer.config import resolve_config
from tfcaf.trainer.run import Run

WALL_CLOCK = ("env_steps_per_s", "wall_s", "wall_s_total", "run_dir")


def rows(path):
    out = []
    for line in (path / "metrics.jsonl").read_text().splitlines():
        rec = json.loads(line)
        for key in WALL_CLOCK:
            rec.pop(key, None)
        out.append(rec)
    return out


def test_registry_entries_are_frozen_and_complete():
    assert set(ALGOS) == {"vd", "happo", "hatrpo", "mappo"}
    assert ALGOS["vd"].uses_mixer and not any(ALGOS[a].uses_mixer for a in ("happo", "hatrpo", "mappo"))
    assert ALGOS["happo"].sequential and ALGOS["hatrpo"].trust_region and not ALGOS["mappo"].sequential
    with pytest.raises(Exception):
        ALGOS["happo"].name = "x"  # type: ignore[misc]


def test_config_layers_include_the_algorithm():
    cfg, source = resolve_config("smax", {"clip_param": 0.1}, {"seed": 2}, algo="happo")
    assert source["n_envs"] == "algo:happo+smax" and source["lr"] == "algo:happo"
    assert source["clip_param"] == "file" and source["seed"] == "flag" and source["gamma"] == "default"
    assert cfg.share_param is False and resolve_config("smax", algo="mappo")[0].share_param is True
    vd, vsource = resolve_config("smax")
    assert vd.n_envs == 16 and vsource["n_envs"] == "family:smax"


@pytest.mark.parametrize("algo,mixer", [("vd", "qmix"), ("vd", "vdn"), ("happo", None), ("hatrpo", None),
                                        ("mappo", None)])
def test_same_seed_same_metrics_row_by_row(tmp_path, algo, mixer):
    flags = {"steps": 1536, "test_interval": 512, "log_interval": 256, "tensorboard": False, "seed": 3,
             "warmup_episodes": 32}
    cfg, _ = resolve_config("matrix", flags=flags, algo=algo)
    a = Run.start("matrix_penalty", mixer, cfg, store=tmp_path / "a", algo=algo)
    a.train()
    b = Run.start("matrix_penalty", mixer, cfg, store=tmp_path / "b", algo=algo)
    b.train()
    ra, rb = rows(a.path), rows(b.path)
    assert len(ra) > 4 and ra == rb
    assert any(r["kind"] == "train" for r in ra)


@pytest.mark.skipif("lbf_8x8-2p-3f" not in TASKS, reason="LBF tasks not registered")
def test_the_reported_lbf_qmix_run_reproduces(tmp_path):
    pytest.importorskip("lbforaging")
    flags = {"steps": 2500, "log_interval": 400, "test_interval": 2000, "tensorboard": False, "test_episodes": 8}
    cfg, _ = resolve_config("lbf", flags=flags)
    paths = []
    for name in ("a", "b"):
        run = Run.start("lbf_8x8-2p-3f", "qmix", cfg, store=tmp_path / name)
        run.train()
        paths.append(run.path)
    ra, rb = rows(paths[0]), rows(paths[1])
    assert any(r.get("loss") for r in ra) and ra == rb


@pytest.mark.parametrize("algo", ["happo", "hatrpo", "mappo"])
def test_each_algorithm_learns_matrix_penalty(tmp_path, algo):
    cfg, _ = resolve_config("matrix", flags={"steps": 10_000, "tensorboard": False, "seed": 1}, algo=algo)
    summary = Run.start("matrix_penalty", None, cfg, store=tmp_path, algo=algo).train()
    assert summary["test_return_mean"] >= 2.0  # the safe joint action or the optimum; never a -100 cell
    assert summary["algo"] == algo and summary["mixer"] is None


@pytest.mark.slow
@pytest.mark.parametrize("algo", ["happo", "hatrpo", "mappo"])
@pytest.mark.skipif("lbf_8x8-2p-3f" not in TASKS, reason="LBF tasks not registered")
def test_each_algorithm_learns_a_small_lbf_map(tmp_path, algo):
    pytest.importorskip("lbforaging")
    cfg, _ = resolve_config("lbf", flags={"steps": 60_000, "tensorboard": False, "test_interval": 30_000,
                                          "test_episodes": 16}, algo=algo)
    summary = Run.start("lbf_8x8-2p-3f", None, cfg, store=tmp_path, algo=algo).train()
    assert summary["test_return_mean"] >= 0.2  # random play collects ~0.05 of the food in 50 steps


def test_a_policy_gradient_run_resumes_from_its_checkpoint(tmp_path):
    cfg, _ = resolve_config("matrix", flags={"steps": 1024, "tensorboard": False, "test_interval": 512,
                                             "checkpoint_interval": 256}, algo="happo")
    first = Run.start("matrix_penalty", None, cfg, store=tmp_path, algo="happo")
    s1 = first.train()
    weights = {k: v.clone() for k, v in first.policy.state_dict().items()}
    resumed = Run.resume(first.path.name, store=tmp_path, steps=2048)
    assert resumed.algo == "happo" and resumed.learner.updates == s1["updates"]
    for k, v in resumed.policy.state_dict().items():
        assert torch.equal(v, weights[k])
    s2 = resumed.train()
    assert s2["env_steps"] >= 2048 and s2["updates"] > s1["updates"]
    prov = json.loads((first.path / "provenance.json").read_text())
    assert prov["algo"] == "happo" and prov["arm"] == "happo" and prov["mixer"] is None


def test_cli_algo_flags_and_usage_errors(tmp_path, capsys):
    store = ["--store", str(tmp_path)]
    assert main(["train", "--task", "matrix_climbing", "--algo", "happo", "--mixer", "qmix", *store]) == 2
    assert "--mixer does not apply" in capsys.readouterr().err
    assert main(["train", "--task", "matrix_climbing", "--algo", "qtran", *store]) == 2
    assert main(["train", "--task", "lbf_8x8-2p-3f", "--mixer", "handwritten", *store]) == 2
    assert "no hand-written reference" in capsys.readouterr().err
    assert main(["train", "--task", "matrix_climbing", "--algo", "mappo", "--show-config"]) == 0
    out = capsys.readouterr().out
    assert "[algo:mappo+matrix]" in out and "share_param" in out and "kl_threshold" in out
    assert main(["train", "--task", "matrix_climbing", "--show-config"]) == 0
    assert "kl_threshold" not in capsys.readouterr().out  # the other family's fields are hidden
    code = main(["train", "--task", "matrix_climbing", "--algo", "mappo", "--steps", "512", "--json",
                 "--set", "tensorboard=false", *store])
    assert code == 0
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert summary["algo"] == "mappo" and summary["arm"] == "mappo"


def test_report_groups_by_arm_with_all_algorithms_on_one_plot(tmp_path):
    from tfcaf.trainer.report import report

    for algo, mixer in (("vd", "vdn"), ("happo", None)):
        cfg, _ = resolve_config("matrix", flags={"steps": 512, "tensorboard": False, "test_interval": 256}, algo=algo)
        Run.start("matrix_climbing", mixer, cfg, store=tmp_path, algo=algo).train()
    result = report([str(tmp_path / "train")], tmp_path / "rep")
    arms = {(r["arm"], r["algo"]) for r in result["rows"]}
    assert arms == {("vdn", "vd"), ("happo", "happo")}
    assert (tmp_path / "rep" / "curves.png").is_file()
    assert "| happo |" in (tmp_path / "rep" / "table.md").read_text()


def test_a_nan_policy_gradient_loss_stops_the_run_as_diverged(tmp_path, monkeypatch):
    from tfcaf.trainer import haml
    from tfcaf.trainer.haml import DivergedPG

    real = haml.P.gae
    calls = {"n": 0}

    def nan_later(*args, **kwargs):
        calls["n"] += 1
        adv, ret = real(*args, **kwargs)
        return (adv * float("nan"), ret) if calls["n"] > 3 else (adv, ret)

    monkeypatch.setattr(haml.P, "gae", nan_later)
    cfg, _ = resolve_config("matrix", flags={"steps": 4096, "tensorboard": False, "test_interval": 256,
                                             "checkpoint_interval": 256}, algo="happo")
    run = Run.start("matrix_penalty", None, cfg, store=tmp_path, algo="happo")
    with pytest.raises(DivergedPG):
        run.train()
    assert DivergedPG("x").exit_code == 1
    assert json.loads((run.path / "status.json").read_text())["status"] == "diverged"
    state = torch.load(run.path / "checkpoint.pt", weights_only=True)
    assert all(torch.isfinite(v).all() for v in state["learner"]["policy"].values())
