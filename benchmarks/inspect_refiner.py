"""What a trained SAC-GLAM refiner learned, measured offline on the refinement run logs (no vetting):

1. From the logged transitions (any policy), each operator's empirical one-step success per goal:
   P(goal achieved after the step | goal not achieved before it), hindsight-style over every goal of the
   task's pool (the dynamics never read the episode's goal).
2. For each refiner and each logged episode start (state, goal), the greedy operator and pi; scored by
   the empirical one-step success of that operator for that goal ("expected one-step success"), against
   the best single operator per goal and the uniform-random policy (the mean over operators).

    python benchmarks/inspect_refiner.py --store STORE --refiner sacglam_her --refiner sacglam_noher \
        [--runs runs/smac_8m/refine-...] [--out benchmarks/results/refiner_train]

Prints one JSON line per (refiner, goal) and per refiner; --out writes results.jsonl and README.md.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections import Counter, defaultdict
from pathlib import Path


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--store", required=True)
    ap.add_argument("--refiner", action="append", default=[], help="refiner name under <store>/generators")
    ap.add_argument("--runs", nargs="*", default=None,
                    help="run logs (relative to the store) to read; default: every refine run of the refiners' manifests")
    ap.add_argument("--max-starts", type=int, default=60, help="episode starts scored per refiner")
    ap.add_argument("--out", default=None)
    args = ap.parse_args()

    import torch

    torch.set_num_threads(1)
    from tfcaf.evaluator.refine import OPERATORS, read_episodes
    from tfcaf.generator.tuning.sacglam import load_refiner
    from tfcaf.rundir import RunDir

    store = Path(args.store)
    runs = args.runs
    if runs is None:
        runs = sorted({r for name in args.refiner
                       for r in json.loads((store / "generators" / name / "manifest.json").read_text())["runs"]})
    per_run = [read_episodes(RunDir(store / r)) for r in runs]
    episodes = [ep for eps in per_run for ep in eps]
    ops = [op.id for op in OPERATORS]
    # 1. empirical one-step success per (goal, operator), over every goal some episode asked for
    goals = sorted({ep["goal"] for ep in episodes})
    tasks_of = {g: {ep["start"].task for ep in episodes if ep["goal"] == g} for g in goals}  # where a goal exists
    hits: dict[tuple[str, str], list[int]] = defaultdict(list)
    for ep in episodes:
        for s in ep["steps"]:
            for g in goals:
                if g in s["state"].achieved or s["state"].task not in tasks_of[g]:
                    continue
                hits[(g, s["operator"])].append(int(g in s["next_state"].achieved))
    table = {g: {o: (sum(hits[(g, o)]) / len(hits[(g, o)]) if hits[(g, o)] else None) for o in ops} for g in goals}
    lines = []
    for g in goals:
        lines.append({"kind": "operator_success", "goal": g, "n": {o: len(hits[(g, o)]) for o in ops},
                      "success": {o: (None if v is None else round(v, 3)) for o, v in table[g].items()}})
        print(json.dumps(lines[-1]), flush=True)
    # episode starts taken round-robin over the runs (every task and run equally represented)
    rr = [eps[i] for i in range(max(map(len, per_run), default=0)) for eps in per_run if i < len(eps)]
    starts = [(ep["start"], ep["goal"]) for ep in rr][: args.max_starts]

    def value(g: str, o: str) -> float:
        v = table[g][o]
        return 0.0 if v is None else v

    for name in args.refiner:
        t0 = time.monotonic()
        refiner = load_refiner(store / "generators" / name)
        per_goal: dict[str, list[tuple[str, float, float, float]]] = defaultdict(list)
        for state, goal in starts:
            p = refiner.probs(state, OPERATORS)
            a = ops[int(p.argmax())]
            rand = sum(value(goal, o) for o in ops) / len(ops)
            best = max(value(goal, o) for o in ops)
            per_goal[goal].append((a, value(goal, a), rand, best))
        total = []
        for g, rows in sorted(per_goal.items()):
            n = len(rows)
            line = {"kind": "refiner_goal", "refiner": name, "goal": g, "starts": n,
                    "greedy_ops": dict(Counter(r[0] for r in rows).most_common()),
                    "expected_one_step_success": round(sum(r[1] for r in rows) / n, 3),
                    "random": round(sum(r[2] for r in rows) / n, 3), "best_operator": round(sum(r[3] for r in rows) / n, 3)}
            lines.append(line)
            total += rows
            print(json.dumps(line), flush=True)
        n = max(1, len(total))
        line = {"kind": "refiner", "refiner": name, "starts": len(total),
                "expected_one_step_success": round(sum(r[1] for r in total) / n, 3),
                "random": round(sum(r[2] for r in total) / n, 3), "best_operator": round(sum(r[3] for r in total) / n, 3),
                "greedy_ops": dict(Counter(r[0] for r in total).most_common()), "wall_s": round(time.monotonic() - t0, 1)}
        lines.append(line)
        print(json.dumps(line), flush=True)
    if args.out:
        out = Path(args.out)
        out.mkdir(parents=True, exist_ok=True)
        (out / "results.jsonl").write_text("".join(json.dumps(x, sort_keys=True) + "\n" for x in lines), encoding="utf-8")
        md = ["# What the SAC-GLAM refiners learned (offline, on their training logs)", "",
              "`python benchmarks/inspect_refiner.py " + " ".join(sys.argv[1:]) + "`", "",
              f"{len(episodes)} logged episodes from {len(runs)} run(s); {len(starts)} episode starts scored.", "",
              "| refiner | goal | starts | greedy operators | expected 1-step success | random | best single operator |",
              "|---|---|---|---|---|---|---|"]
        for x in lines:
            if x["kind"] in ("refiner_goal", "refiner"):
                md.append(f"| {x['refiner']} | {x.get('goal', '**all**')} | {x['starts']} | "
                          f"{', '.join(f'{k} {v}' for k, v in x['greedy_ops'].items())} | {x['expected_one_step_success']} | "
                          f"{x['random']} | {x['best_operator']} |")
        md += ["", "Empirical one-step success per operator (all logged transitions, hindsight over the goals):", "",
               "| goal | " + " | ".join(ops) + " |", "|---|" + "---|" * len(ops)]
        for g in goals:
            md.append(f"| {g} | " + " | ".join("-" if table[g][o] is None else f"{table[g][o]:.2f} ({len(hits[(g, o)])})"
                                                 for o in ops) + " |")
        (out / "README.md").write_text("\n".join(md) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
