"""Config range checks (exit 2, one line), hostile config files, a mixer graph whose probe fails at load,
and the trainer's import direction."""

from __future__ import annotations

import ast
import json
from pathlib import Path

import pytest

from tfcaf.cli import main
from tfcaf.errors import RejectedError, UsageError
from tfcaf.trainer.config import TrainConfig, resolve_config

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("setting", ["agent_hidden=0", "epsilon_start=-5", "threads=0", "test_interval=0",
                                     "grad_clip=-1", "lr=nan", "gamma=inf", "steps=-3", "clip_param=1.5",
                                     "n_envs=0", "rollout_length=0", "epsilon_finish=2", "entropy_coef=-1",
                                     "kl_threshold=0", "log_interval=0", "batch_size=1.5"])
def test_out_of_range_settings_are_one_line_usage_errors(tmp_path, capsys, setting):
    code = main(["train", "--task", "matrix_climbing", "--store", str(tmp_path), "--set", setting])
    err = capsys.readouterr().err.strip()
    assert code == 2
    assert len(err.splitlines()) == 1 and setting.split("=")[0] in err and "Traceback" not in err
    assert not (tmp_path / "train").exists()  # nothing started


def test_binary_oversized_and_non_finite_config_files_are_usage_errors(tmp_path, capsys):
    binary = tmp_path / "cfg.json"
    binary.write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00\xff\xfe")
    nul = tmp_path / "nul.toml"
    nul.write_bytes(b"lr = 0.1\x00\n")
    nan = tmp_path / "nan.json"
    nan.write_text('{"lr": NaN}')
    big = tmp_path / "big.json"
    big.write_text(json.dumps({"lr": 0.1, "pad": "x" * 1_100_000}))
    wrong_type = tmp_path / "type.json"
    wrong_type.write_text('{"steps": [1, 2]}')
    for f in (binary, nul, nan, big, wrong_type):
        assert main(["train", "--task", "matrix_climbing", "--config", str(f), "--store", str(tmp_path)]) == 2, f
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1 and "Traceback" not in err


def test_valid_edges_are_accepted():
    TrainConfig(epsilon_start=0.0, epsilon_finish=0.0, td_lambda=1.0, gamma=1.0, seed=0, warmup_episodes=0)
    cfg, _ = resolve_config("matrix", flags={"entropy_coef": "0", "updates_per_iter": "0"}, algo="happo")
    assert cfg.entropy_coef == 0.0
    with pytest.raises(UsageError, match="expects int"):
        resolve_config("matrix", {"steps": True})


def test_a_graph_whose_probe_fails_marks_the_run_failed(tmp_path):
    from test_approved_mixer import approve_fixture

    from tfcaf.trainer import mixers
    from tfcaf.trainer.run import Run

    approve_fixture(tmp_path, name="wrong_shape")
    real = mixers._build_approved

    def wrong_shape(fn_name, card, device, store):
        built = real(fn_name, card, device, store)

        class PerAgent(type(built.module)):  # returns [B, T, N] instead of [B, T, 1]
            def forward(self, q, s):
                return q

        built.module.__class__ = PerAgent
        return built

    cfg, _ = resolve_config("matrix", flags={"steps": 256, "tensorboard": False})
    mixers_build = mixers._build_approved
    try:
        mixers._build_approved = wrong_shape
        with pytest.raises(RejectedError, match="failed its probe"):
            Run.start("matrix_penalty", "tfcaf:wrong_shape", cfg, store=tmp_path)
    finally:
        mixers._build_approved = mixers_build
    (run_dir,) = (tmp_path / "train" / "matrix_penalty").iterdir()
    status = json.loads((run_dir / "status.json").read_text())
    assert status["status"] == "failed" and "probe" in status["message"]


def test_an_error_during_training_marks_the_run_failed(tmp_path, monkeypatch):
    from tfcaf.trainer.run import Run

    cfg, _ = resolve_config("matrix", flags={"steps": 2048, "tensorboard": False, "test_interval": 512})
    run = Run.start("matrix_penalty", "vdn", cfg, store=tmp_path)

    def boom(batch):
        raise RuntimeError("shape mismatch in the mixer")

    monkeypatch.setattr(run.learner, "update", boom)
    with pytest.raises(RuntimeError):
        run.train()
    status = json.loads((run.path / "status.json").read_text())
    assert status["status"] == "failed" and "shape mismatch" in status["message"]


def _imports(folder: Path) -> dict[str, set[str]]:
    out = {}
    for path in folder.rglob("*.py"):
        names = set()
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom) and node.module:
                names.add(node.module)
            elif isinstance(node, ast.Import):
                names.update(a.name for a in node.names)
        out[str(path.relative_to(ROOT))] = names
    return out


def test_import_direction_of_the_trainer():
    """tasks -> generator -> sandbox -> evaluator -> trainer: nothing before the trainer imports it, and the
    trainer reaches back only into the core, tasks and the sandbox's graph rebuild (never generator/evaluator)."""
    for stage in ("tasks", "generator", "sandbox", "evaluator"):
        for path, names in _imports(ROOT / stage).items():
            assert not any(n.startswith("tfcaf.trainer") for n in names), path
    for path, names in _imports(ROOT / "tfcaf").items():
        if not path.endswith("cli.py"):  # the top-level CLI registers every stage's verbs
            assert not any(n.startswith("tfcaf.trainer") for n in names), path
    for path, names in _imports(ROOT / "trainer").items():
        bad = [n for n in names if n.startswith(("tfcaf.generator", "tfcaf.evaluator"))]
        assert not bad, (path, bad)
