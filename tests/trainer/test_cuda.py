"""The trainer on CUDA (skipped without a CUDA device; run by benchmarks/gpu_check.py on a GPU machine)."""

from __future__ import annotations

import pytest
import torch

from tfcaf.trainer.config import resolve_config
from tfcaf.trainer.run import Run


@pytest.mark.cuda
@pytest.mark.parametrize("algo,mixer", [("vd", "qmix"), ("vd", "handwritten"), ("happo", None), ("hatrpo", None),
                                        ("mappo", None)])
def test_short_run_on_cuda(tmp_path, algo, mixer):
    cfg, _ = resolve_config("matrix", flags={"steps": 1024, "tensorboard": False, "test_interval": 512}, algo=algo)
    run = Run.start("matrix_penalty", mixer, cfg, device="cuda", store=tmp_path, algo=algo)
    summary = run.train()
    assert summary["env_steps"] >= 1024 and summary["updates"] > 0
    params = run.agent.parameters() if algo == "vd" else run.policy.parameters()
    assert all(p.is_cuda for p in params)


@pytest.mark.cuda
def test_happo_recurrent_update_on_cuda_matches_cpu_shapes(tmp_path):
    cfg, _ = resolve_config("matrix", flags={"steps": 512, "tensorboard": False, "recurrent": True,
                                             "value_kind": "fp"}, algo="happo")
    summary = Run.start("matrix_climbing", None, cfg, device="cuda", store=tmp_path, algo="happo").train()
    assert summary["test_return_mean"] is not None and torch.cuda.is_available()
