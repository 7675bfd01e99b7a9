"""Run directory, checkpoints, resume, NaN/inf divergence and the `tfcaf train` command line."""

from __future__ import annotations

import json

import pytest
import torch

from tfcaf.cli import main
from tfcaf.trainer import mixers as mixers_module
from tfcaf.trainer.config import resolve_config
from tfcaf.trainer.learner import DivergedError
from tfcaf.trainer.mixers import CreditFunctionMixer, MixerSpec
from tfcaf.trainer.run import Run

FAST = {"steps": 1024, "n_envs": 32, "test_interval": 512, "checkpoint_interval": 256, "log_interval": 256,
        "tensorboard": False, "warmup_episodes": 32, "epsilon_anneal_steps": 512}


def lines(path):
    return [json.loads(line) for line in (path / "metrics.jsonl").read_text().splitlines()]


def test_run_writes_its_directory(tmp_path):
    cfg, source = resolve_config("matrix", flags={**FAST, "tensorboard": True})
    run = Run.start("matrix_penalty", "vdn", cfg, store=tmp_path, config_source=source)
    summary = run.train()
    d = run.path
    assert d.parent == tmp_path / "train" / "matrix_penalty"
    for name in ("config.json", "provenance.json", "metrics.jsonl", "checkpoint.pt", "status.json"):
        assert (d / name).is_file(), name
    assert list((d / "tb").glob("events.out.tfevents.*"))
    prov = json.loads((d / "provenance.json").read_text())
    assert prov["mixer"] == "vdn" and prov["mixer_hashes"]["source_sha256"] and prov["versions"]["torch"]
    assert json.loads((d / "config.json").read_text())["source"]["steps"] == "flag"
    kinds = [r["kind"] for r in lines(d)]
    assert kinds.count("test") >= 2 and "train" in kinds and kinds[-1] == "done"
    assert summary["env_steps"] >= 1024 and summary["updates"] > 0 and summary["mixer_params"] == 0
    assert json.loads((d / "status.json").read_text())["status"] == "done"


def test_resume_continues_from_the_checkpoint(tmp_path):
    cfg, _ = resolve_config("matrix", flags={**FAST, "steps": 512})
    first = Run.start("matrix_penalty", "qmix", cfg, store=tmp_path)
    s1 = first.train()
    weights = {k: v.clone() for k, v in first.agent.state_dict().items()}
    resumed = Run.resume(first.path.name, store=tmp_path, steps=1024)
    assert resumed.env_steps == s1["env_steps"] and resumed.learner.updates == s1["updates"]
    for k, v in resumed.agent.state_dict().items():
        assert torch.equal(v, weights[k])
    s2 = resumed.train()
    assert s2["env_steps"] >= 1024 and s2["updates"] > s1["updates"]
    kinds = [r["kind"] for r in lines(first.path)]
    assert "resume" in kinds and kinds[-1] == "done"


def test_resume_refuses_a_changed_mixer(tmp_path):
    from tfcaf.errors import RejectedError

    cfg, _ = resolve_config("matrix", flags={**FAST, "steps": 256})
    run = Run.start("matrix_penalty", "vdn", cfg, store=tmp_path)
    run.train()
    prov_path = run.path / "provenance.json"
    prov = json.loads(prov_path.read_text())
    prov["mixer_hashes"]["source_sha256"] = "0" * 64
    prov_path.write_text(json.dumps(prov))
    with pytest.raises(RejectedError, match="no longer matches"):
        Run.resume(str(run.path), store=tmp_path)


class NaNAfter(torch.nn.Module):
    """Sum of Q values until `limit` calls, then NaN (a diverging credit function)."""

    calls = 0

    def forward(self, q, s):
        NaNAfter.calls += 1
        out = q.sum(-1, keepdim=True)
        return out * float("nan") if NaNAfter.calls > 120 else out


def test_nan_loss_stops_with_exit_1_and_keeps_the_last_good_checkpoint(tmp_path, monkeypatch, capsys):
    NaNAfter.calls = 0
    spec = MixerSpec("nan_after", "test only", lambda card, cfg, dev: CreditFunctionMixer(NaNAfter(), 2, 1), False)
    monkeypatch.setitem(mixers_module.MIXERS, "nan_after", spec)
    code = main(["train", "--task", "matrix_penalty", "--mixer", "nan_after", "--store", str(tmp_path), "--steps", "4096",
                 "--set", "test_interval=256", "--set", "checkpoint_interval=128", "--set", "tensorboard=false",
                 "--set", "updates_per_iter=4"])
    assert code == 1
    assert "loss became nan" in capsys.readouterr().err
    (run_dir,) = (tmp_path / "train" / "matrix_penalty").iterdir()
    assert json.loads((run_dir / "status.json").read_text())["status"] == "diverged"
    state = torch.load(run_dir / "checkpoint.pt", weights_only=True)
    assert 0 < state["env_steps"] < 4096
    assert all(torch.isfinite(v).all() for v in state["learner"]["agent"].values())
    assert lines(run_dir)[-1]["kind"] == "diverged"


def test_diverged_error_is_a_rejection():
    assert DivergedError("x").exit_code == 1


def test_cli_json_summary_and_usage_errors(tmp_path, capsys):
    code = main(["train", "--task", "matrix_climbing", "--mixer", "vdn", "--store", str(tmp_path), "--steps", "512",
                 "--json", "--set", "tensorboard=false"])
    assert code == 0
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    for key in ("env_steps", "wall_s", "env_steps_per_s", "test_return_mean", "test_win_rate", "mixer_params", "run_dir"):
        assert key in summary
    assert summary["test_win_rate"] is None  # not a SMAX task
    assert main(["train", "--task", "no_such_task", "--store", str(tmp_path)]) == 2
    assert main(["train", "--task", "matrix_climbing", "--mixer", "nope", "--store", str(tmp_path)]) == 2
    assert main(["train", "--task", "matrix_climbing", "--set", "gamma", "--store", str(tmp_path)]) == 2
    assert main(["train", "--resume", "no-such-run", "--store", str(tmp_path)]) == 2
    assert main(["train", "--task", "matrix_climbing", "--show-config"]) == 0
    assert "epsilon_anneal_steps" in capsys.readouterr().out


def test_a_killed_run_resumes_from_its_last_checkpoint(tmp_path):
    cfg, _ = resolve_config("matrix", flags={**FAST, "steps": 2048})
    run = Run.start("matrix_penalty", "vdn", cfg, store=tmp_path)

    def kill(done, total, info):
        if done >= 700:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        run.train(kill)
    assert json.loads((run.path / "status.json").read_text())["status"] == "running"
    saved = torch.load(run.path / "checkpoint.pt", weights_only=True)
    assert 256 <= saved["env_steps"] < 2048
    resumed = Run.resume(str(run.path), store=tmp_path)
    assert resumed.env_steps == saved["env_steps"]
    summary = resumed.train()
    assert summary["env_steps"] >= 2048
    assert json.loads((run.path / "status.json").read_text())["status"] == "done"
