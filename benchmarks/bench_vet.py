"""Vetting latency per candidate (p50, p95) for valid and rejected candidates, with a warm worker pool.

Prints one JSON line per measurement. Candidates come from tests/adversarial (valid corpus; attacks
split into those rejected by the static gates in the trusted process and those that need the worker).
Time-out and resource-bomb attacks are left out by default (their latency is the configured limit).

    python3 benchmarks/bench_vet.py [--task smac_3m] [--repeats 2] [--workers 1]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CORPUS = ROOT / "tests" / "adversarial"
sys.path.insert(0, str(CORPUS))
from adversarial_corpus import header  # noqa: E402  (the corpus's own `# key: value` reader)

SLOW_STATUSES = {"timeout", "memory"}


def pct(xs: list[float], q: float) -> float:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(round(q * (len(xs) - 1))))]


def summary(name: str, task: str, times: list[float], extra: dict | None = None) -> dict:
    return {"bench": "vet_latency", "kind": name, "task": task, "n": len(times),
            "p50_s": round(statistics.median(times), 3), "p95_s": round(pct(times, 0.95), 3),
            "max_s": round(max(times), 3), **(extra or {})}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--task", default="smac_3m")
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--workers", type=int, default=1)
    ap.add_argument("--examples", type=int, default=20)
    args = ap.parse_args()

    from tfcaf.runtime import configure_torch
    from tfcaf.sandbox.vetting import Vetter, VetOptions, vet
    from tfcaf.tasks.registry import TASKS, get_card

    configure_torch(1)
    task = args.task if args.task in TASKS else "matrix_climbing"
    card = get_card(task)
    valid = [p for p in sorted((CORPUS / "valid").glob("*.*")) if header(p)["tasks"] == "*" or task in header(p)["tasks"]]
    attacks = [p for p in sorted((CORPUS / "attacks").glob("*.*")) if not SLOW_STATUSES & set(header(p)["status"].split("|"))]

    t = time.perf_counter()
    cold = vet(valid[0].read_text(), card, VetOptions(examples=args.examples))
    print(json.dumps({"bench": "vet_latency", "kind": "cold_one_shot", "task": task, "seconds": round(time.perf_counter() - t, 3),
                      "verdict": cold.verdict}), flush=True)

    options = VetOptions(workers=args.workers, examples=args.examples)
    with Vetter(options) as vetter:
        vetter.vet(valid[0].read_text(), card)  # wait for the pool to be warm
        times: dict[str, list[float]] = {"valid_accepted": [], "rejected_static": [], "rejected_in_worker": []}
        wrong = []
        for _ in range(args.repeats):
            for path in valid:
                t = time.perf_counter()
                v = vetter.vet(path.read_text(), card)
                times["valid_accepted"].append(time.perf_counter() - t)
                if not v.accepted:
                    wrong.append(path.name)
            for path in attacks:
                meta = header(path)
                t = time.perf_counter()
                v = vetter.vet(path.read_text(encoding="utf-8"), card if meta.get("task") in ("igm", task) else get_card("matrix_climbing"))
                dt = time.perf_counter() - t
                times["rejected_static" if v.stage in ("text", "ast") else "rejected_in_worker"].append(dt)
                if v.verdict != "rejected":
                    wrong.append(path.name)
    for name, xs in times.items():
        if xs:
            print(json.dumps(summary(name, task, xs, {"workers": args.workers, "examples": args.examples})), flush=True)
    everything = [x for xs in times.values() for x in xs]
    print(json.dumps(summary("all_candidates", task, everything, {"wrong_verdicts": wrong})), flush=True)
    graph_speed(valid, card, task)
    return 1 if wrong else 0


def graph_speed(valid: list[Path], card, task: str, batch: int = 3200, runs: int = 15) -> None:
    """Forward + backward at B = batch: the rebuilt graph vs the eager function (our own trusted corpus,
    loaded in-process), interleaved run by run so both see the same machine load."""
    import torch

    from tfcaf.sandbox.astgate import check_module
    from tfcaf.sandbox.export import export_graph
    from tfcaf.sandbox.graph import load_graph
    from tfcaf.sandbox.namespace import load_candidate
    from tfcaf.sandbox.textgate import extract_source

    gen = torch.Generator().manual_seed(0)
    low = torch.tensor(card.state_low).clamp(-1e3, 1e3)
    high = torch.tensor(card.state_high).clamp(-1e3, 1e3)
    s = low + torch.rand(batch, card.state_dim, generator=gen) * (high - low)
    q = torch.randn(batch, card.n_agents, generator=gen).requires_grad_(True)
    for path in valid:
        fn = load_candidate(check_module(extract_source(path.read_text())))
        graph_data = export_graph(fn, card.n_agents, card.state_dim)
        graph = load_graph(graph_data)
        eager_t, graph_t = [], []
        for _ in range(runs):
            for f, acc in ((fn, eager_t), (graph, graph_t)):
                t = time.perf_counter()
                f(q, s).sum().backward()
                acc.append(time.perf_counter() - t)
        e, g = statistics.median(eager_t) * 1e3, statistics.median(graph_t) * 1e3
        print(json.dumps({"bench": "graph_vs_eager", "function": path.stem, "task": task, "batch": batch,
                          "graph_nodes": len(graph_data["nodes"]), "live_nodes": graph.n_nodes,
                          "eager_ms_p50": round(e, 3), "graph_ms_p50": round(g, 3), "ratio": round(g / e, 2)}), flush=True)


if __name__ == "__main__":
    sys.exit(main())
