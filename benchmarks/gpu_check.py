"""GPU check for a machine with CUDA (at most ~6 minutes); one JSON line per result.

    python3 benchmarks/gpu_check.py [--seconds 10] [--task smac_3m]

1. the `cuda`-marked tests (pytest -m cuda);
2. the vetting graph (the hand-written reference exported to a plain-data ATen graph) rebuilt on CUDA and
   checked against CPU, forward and backward;
3. env-steps/s including learning on --device cuda for qmix, a tfcaf: graph mixer and happo on smac_3m at
   E in {64, 512} (bench_train.py's `algos` measurement, side by side).

Without CUDA it prints one line {"check": "gpu", "status": "skipped", ...} and exits 0, so it is safe to
run anywhere. Determinism on CUDA: cuBLAS/cuDNN GRU kernels are not bitwise deterministic by default, so
CUDA runs with the same seed agree only approximately (CPU runs agree row by row).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
DEADLINE_S = 6 * 60


def emit(**record: object) -> None:
    print(json.dumps(record), flush=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=10.0, help="per throughput setting")
    parser.add_argument("--task", default="smac_3m")
    parser.add_argument("--envs", type=int, action="append", help="E values (default 64, 512)")
    args = parser.parse_args()
    import torch

    if not torch.cuda.is_available():
        emit(check="gpu", status="skipped", reason="torch sees no CUDA device (torch.cuda.is_available() is False)",
             torch=torch.__version__)
        return 0
    start = time.perf_counter()
    emit(check="gpu", status="start", device=torch.cuda.get_device_name(0), torch=torch.__version__,
         cuda=torch.version.cuda)
    # 1. cuda-marked tests
    t0 = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "pytest", "-q", "-m", "cuda", "-p", "no:cacheprovider", "tests"],
                          cwd=HERE.parent, capture_output=True, text=True, timeout=150)
    last = (proc.stdout.strip().splitlines() or [""])[-1]
    emit(check="cuda_tests", rc=proc.returncode, summary=last, wall_s=round(time.perf_counter() - t0, 1))
    # 2. the vetting graph on CUDA vs CPU
    sys.path.insert(0, str(HERE))
    from bench_train import bench_algos, graph_mixer

    from tfcaf.tasks.registry import get_card

    card = get_card(args.task)
    cpu, gpu = graph_mixer(card, "cpu"), graph_mixer(card, "cuda")
    q = torch.randn(8, 5, card.n_agents)
    s = torch.rand(8, 5, card.state_dim)
    qc, qg = q.clone().requires_grad_(True), q.cuda().requires_grad_(True)
    out_c, out_g = cpu(qc, s), gpu(qg, s.cuda())
    out_c.sum().backward()
    out_g.sum().backward()
    emit(check="graph_on_cuda", task=args.task, max_abs_diff=float((out_c - out_g.cpu()).abs().max()),
         grad_max_abs_diff=float((qc.grad - qg.grad.cpu()).abs().max()), out_device=str(out_g.device))
    # 3. throughput, side by side
    for n_envs in args.envs or [64, 512]:
        if time.perf_counter() - start > DEADLINE_S - 90:
            emit(check="throughput", status="skipped", n_envs=n_envs, reason="6-minute budget nearly spent")
            continue
        bench_algos(args.task, [n_envs], args.seconds, "cuda", ["qmix", "tfcaf-graph", "happo"])
    emit(check="gpu", status="done", wall_s=round(time.perf_counter() - start, 1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
