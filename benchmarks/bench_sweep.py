"""Wall time of a tasks x arms x seeds grid: the same `tfcaf train` cells one after another vs `tfcaf sweep` on
local Ray. Prints one JSON line per measurement and a ratio line.

    python benchmarks/bench_sweep.py --steps 64 --seeds 3 > benchmarks/results/sweep_cpu.jsonl
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import tempfile
import time
from pathlib import Path

from tfcaf.trainer.sweep import Sweep, SweepSpec, grid, run_cell, train_argv


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--task", nargs="+", default=["matrix_climbing", "matrix_penalty"])
    ap.add_argument("--algo", nargs="+", default=["vd", "mappo"])
    ap.add_argument("--mixer", nargs="+", default=["vdn", "qmix"])
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--steps", type=int, default=64)
    args = ap.parse_args()
    cells = grid(args.task, args.algo, args.mixer, args.seeds)
    spec = SweepSpec(tuple(args.task), tuple(args.algo), tuple(args.mixer), args.seeds, args.steps, (), tuple(cells))
    common = {"cells": len(cells), "tasks": args.task, "arms": sorted({c.arm for c in cells}), "seeds": args.seeds,
              "steps": args.steps, "cpus": os.cpu_count(), "machine": platform.machine(),
              "note": "shared machine: other engineers' jobs ran at the same time"}
    with tempfile.TemporaryDirectory() as tmp:
        env = {**os.environ, "OMP_NUM_THREADS": "1"}
        start = time.perf_counter()
        failed = sum(run_cell(train_argv(c, spec, Path(tmp) / "seq"), env)["rc"] != 0 for c in cells)
        seq = time.perf_counter() - start
        print(json.dumps({"bench": "sweep", "mode": "sequential", "wall_s": round(seq, 1), "failed": failed, **common}), flush=True)
        start = time.perf_counter()
        summary = Sweep.create(Path(tmp) / "ray", spec).run()
        ray_s = time.perf_counter() - start
        print(json.dumps({"bench": "sweep", "mode": "tfcaf sweep (local ray)", "wall_s": round(ray_s, 1),
                          "failed": summary["failed"], **common}), flush=True)
        print(json.dumps({"bench": "sweep", "ratio_sequential_over_sweep": round(seq / ray_s, 2), **common}), flush=True)


if __name__ == "__main__":
    main()
