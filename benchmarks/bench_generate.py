"""Benchmark `tfcaf generate`: LLM calls and tokens per accepted candidate and per selected function, and
wall time to the first accepted candidate, with the embedded default (SmolLM2 in process, spec mode,
1 thread, real vetter) on CPU. One JSON line per run, then one line of medians over the seeds.

    python3 benchmarks/bench_generate.py                       # smac_3m, seeds 0 1 2, every default
    python3 benchmarks/bench_generate.py --seeds 0 --task matrix_climbing
    python3 benchmarks/bench_generate.py --backend openai --base-url http://127.0.0.1:8080/v1 --model m

The response cache is off (every request is a real call) and each run gets a fresh store.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time


def run_once(task: str, seed: int, extra: dict) -> dict:
    from tfcaf.generator.config import resolve
    from tfcaf.generator.session import generate

    with tempfile.TemporaryDirectory() as store:
        flags = {"task": task, "seed": seed, "store": store, "cache": False, **extra}
        config, sources = resolve(flags, env={})
        start = time.perf_counter()
        s = generate(config, sources)
        total = time.perf_counter() - start
    tokens = s["tokens"]["total"]
    acc = s["accepted"]
    return {
        "bench": "generate", "task": task, "backend": s["backend"], "model": s["model"], "mode": s["mode"],
        "seed": seed, "k": config.k, "rounds": config.rounds, "wall_s": round(total, 2),
        "loop_wall_s": s["wall_s"], "first_accepted_s": s["first_accepted_s"], "candidates": s["candidates"],
        "accepted": acc, "selected": s["selected"], "llm_calls": s["llm_calls"], "tokens": tokens,
        "calls_by_purpose": s["calls_by_purpose"], "stopped": s["stopped"],
        "calls_per_accepted": round(s["llm_calls"] / acc, 2) if acc else None,
        "tokens_per_accepted": round(tokens / acc, 1) if acc else None,
        "calls_per_selected": s["llm_calls"] if s["selected"] else None,
        "tokens_per_selected": tokens if s["selected"] else None,
        "load_avg_1m": round(os.getloadavg()[0], 2),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--task", default="smac_3m")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--backend", default=None)
    parser.add_argument("--base-url", default=None)
    parser.add_argument("--model", default=None)
    parser.add_argument("--mode", default=None)
    args = parser.parse_args(argv)
    extra = {k: v for k, v in {"backend": args.backend, "base_url": args.base_url, "model": args.model,
                               "mode": args.mode}.items() if v is not None}
    rows = []
    for seed in args.seeds:
        row = run_once(args.task, seed, extra)
        rows.append(row)
        print(json.dumps(row), flush=True)

    def med(key: str) -> float | None:
        values = [r[key] for r in rows if r[key] is not None]
        return round(statistics.median(values), 2) if values else None

    print(json.dumps({"bench": "generate_median", "task": args.task, "backend": rows[0]["backend"], "mode": rows[0]["mode"],
                      "seeds": args.seeds, "runs_with_selection": sum(r["selected"] is not None for r in rows),
                      **{f"median_{k}": med(k) for k in ("wall_s", "first_accepted_s", "accepted", "llm_calls", "tokens",
                                                         "calls_per_accepted", "tokens_per_accepted",
                                                         "calls_per_selected", "tokens_per_selected")}}), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
