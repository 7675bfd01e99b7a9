"""Refinement policies on the refinement MDP (spec mode): trained SAC-GLAM refiners (with and without
hindsight relabelling) vs the plain loop's policy (repair when rejected, else refine) vs uniform random.

Every arm runs the SAME episodes: for each held-out task, each goal and each start seed, one episode of
at most `--horizon` steps from the same seeded starting spec, on the real vetter, with the embedded
SmolLM2 answering the LLM operators (repair/refine) with the same request seeds (common random numbers).
So every arm has the same budget cap per episode: `horizon` LLM calls and `horizon` vetting calls (plus
the one vetting of the shared start); the calls each arm actually spent are reported. Measured per arm:
goal success rate per goal, LLM and vetting calls per accepted candidate (the start excluded), best
tiered reward, and the short-training fitness (`trainer/fitness.py`, SMAX win rate) of the arm's best
candidate on smac_3m with the same step budget and seed for every arm.

Prints one JSON line per episode and per summary; `--out` writes results.jsonl, figure.png, README.md.

    python benchmarks/bench_refine.py --tasks smac_3m lbf_2s-8x8-2p-2f-coop --seeds 2 --horizon 3 \
        --refiner sacglam_her=her --refiner sacglam_noher=noher --store STORE --fitness-steps 10000 \
        --out benchmarks/results/refine_cpu
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

GOALS = {
    "smac_3m": ["masks_dead_agents", "not_vdn", "uses_feature:nearest_enemy_distance"],
    "lbf_2s-8x8-2p-2f-coop": ["not_vdn", "state_dependent", "uses_feature:nearest_food_distance"],
}


OUT: list[Path] = []
"""results.jsonl, appended line by line (a crash late in the run keeps what was measured)."""


def emit(line: dict, sink: list) -> None:
    print(json.dumps(line, sort_keys=True), flush=True)
    sink.append(line)
    for path in OUT:
        with open(path, "a", encoding="utf-8") as fh:
            fh.write(json.dumps(line, sort_keys=True) + "\n")


def run_arm(arm: str, policy, task: str, goals: list[str], seeds: list[int], args, backend, vet, store: Path,
            sink: list) -> dict:
    from tfcaf.evaluator.refine import OPERATORS, RefineEnv

    best = {"reward_total": -1.0, "graph": None, "cid": None}
    per_goal: dict[str, list[bool]] = defaultdict(list)
    llm_calls = vet_calls = accepted_new = 0
    started = time.monotonic()
    with RefineEnv(task, store=store, backend=backend, vet=vet, horizon=args.horizon, goals=goals,
                   seed=args.seed, cache=args.cache) as env:
        for goal in goals:
            for seed in seeds:
                t0 = time.monotonic()
                state = env.reset(goal=goal, seed=seed)
                ops, done, info = [], False, {}
                ep_llm = ep_vet = ep_acc = 0
                ep_best = state.reward_total
                while not done:
                    action = policy.choose(state, OPERATORS)
                    state, reward, done, info = env.step(action)
                    ops.append(OPERATORS[action].id)
                    ep_llm += info["llm_calls"]
                    ep_vet += info["vet_calls"]
                    cand = env.current
                    if info["vet_calls"] and cand is not None and cand.cid == info["cid"] and cand.accepted:
                        ep_acc += 1
                    ep_best = max(ep_best, state.reward_total)
                    if cand is not None and cand.accepted and state.reward_total > best["reward_total"]:
                        best = {"reward_total": state.reward_total, "graph": cand.verdict.get("graph"), "cid": cand.cid}
                success = goal in state.achieved
                per_goal[goal].append(success)
                llm_calls, vet_calls, accepted_new = llm_calls + ep_llm, vet_calls + ep_vet, accepted_new + ep_acc
                emit({"kind": "episode", "arm": arm, "task": task, "goal": goal, "seed": seed, "success": success,
                      "steps": state.step, "operators": ops, "llm_calls": ep_llm, "vet_calls": ep_vet,
                      "accepted_new": ep_acc, "best_reward": round(ep_best, 6), "final_reward": state.reward_total,
                      "wall_s": round(time.monotonic() - t0, 2)}, sink)
    episodes = sum(len(v) for v in per_goal.values())
    summary = {"kind": "arm_task", "arm": arm, "task": task, "episodes": episodes,
               "success_rate": round(sum(sum(v) for v in per_goal.values()) / max(1, episodes), 4),
               "success_per_goal": {g: round(sum(v) / len(v), 4) for g, v in per_goal.items()},
               "llm_calls": llm_calls, "vet_calls": vet_calls, "accepted_new": accepted_new,
               "llm_per_accepted": round(llm_calls / accepted_new, 3) if accepted_new else None,
               "vet_per_accepted": round(vet_calls / accepted_new, 3) if accepted_new else None,
               "best_reward": round(best["reward_total"], 6), "best_cid": best["cid"],
               "wall_s": round(time.monotonic() - started, 1)}
    emit(summary, sink)
    summary["_graph"] = best["graph"]
    return summary


def figure(lines: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = [r for r in lines if r["kind"] == "arm_task"]
    arms = sorted({r["arm"] for r in rows}, key=lambda a: [r["arm"] for r in rows].index(a))
    keys = [(r["task"], g) for r in rows if r["arm"] == arms[0] for g in r["success_per_goal"]]
    fig, ax = plt.subplots(figsize=(max(6, 1.3 * len(keys)), 3.8))
    width = 0.8 / max(1, len(arms))
    for i, arm in enumerate(arms):
        vals = []
        for task, goal in keys:
            r = next((x for x in rows if x["arm"] == arm and x["task"] == task), None)
            vals.append((r or {}).get("success_per_goal", {}).get(goal, 0.0))
        ax.bar([k + i * width for k in range(len(keys))], vals, width, label=arm)
    ax.set_xticks([k + 0.4 - width / 2 for k in range(len(keys))])
    ax.set_xticklabels([f"{t.split('-')[0]}\n{g.replace('uses_feature:', 'uses:')}" for t, g in keys], fontsize=6)
    ax.set_ylabel("goal success rate")
    ax.set_ylim(0, 1.05)
    ax.set_title("refinement policies, spec mode, held-out tasks (same episodes, same call cap)")
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=120)


def readme(lines: list[dict], args, path: Path, command: str) -> None:
    rows = [r for r in lines if r["kind"] == "arm_task"]
    fit = {r["arm"]: r for r in lines if r["kind"] == "fitness"}
    out = ["# Refinement policies on held-out tasks (spec mode, CPU)", "",
           f"Command: `{command}`", "",
           f"Horizon {args.horizon}, start seeds {args.seeds}, the real vetter (card-range states), "
           + ("no LLM (repair/refine were no-ops)" if args.no_llm else "the embedded SmolLM2 for repair/refine")
           + "; every arm ran the same episodes (same start spec, same goal, same request "
           "seeds), so each had the same cap of LLM and vetting calls per episode. Success = the goal is achieved "
           "when the episode ends. Calls per accepted candidate exclude the shared start candidate.", "",
           "| arm | task | success | per goal | LLM calls | vet calls | LLM/accepted | vet/accepted | best reward | wall s |",
           "|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        goals = ", ".join(f"{g}: {v:.2f}" for g, v in r["success_per_goal"].items())
        out.append(f"| {r['arm']} | {r['task']} | {r['success_rate']:.2f} | {goals} | {r['llm_calls']} | {r['vet_calls']} | "
                   f"{r['llm_per_accepted']} | {r['vet_per_accepted']} | {r['best_reward']:.3f} | {r['wall_s']} |")
    if fit:
        out += ["", f"Short-training fitness of each arm's best smac_3m candidate ({args.fitness_steps} env steps, "
                "seed 0, SMAX greedy test win rate; a graph shared by two arms is trained once):", "",
                "| arm | candidate | graph | best reward | fitness | wall s |", "|---|---|---|---|---|---|"]
        for arm, r in fit.items():
            out.append(f"| {arm} | {r['cid']} | {r['graph_sha256']} | {r['best_reward']} | {r['fitness']} | {r['wall_s']} |")
    out += ["", "![success rate per goal](figure.png)", ""]
    path.write_text("\n".join(out) + "\n", encoding="utf-8")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--tasks", nargs="+", default=list(GOALS))
    ap.add_argument("--goals", nargs="*", default=None, help="goals for every task (default: GOALS per task)")
    ap.add_argument("--seeds", type=int, default=2, help="start seeds per goal")
    ap.add_argument("--horizon", type=int, default=3)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--arms", nargs="+", default=["plain", "random"], help="built-in arms: plain, random")
    ap.add_argument("--refiner", action="append", default=[], metavar="ARM=NAME",
                    help="a trained refiner arm: its label and its name under <store>/generators")
    ap.add_argument("--store", default=None, help="store holding the trained refiners (generators/NAME)")
    ap.add_argument("--no-llm", action="store_true", help="no LLM backend (repair/refine become no-ops)")
    ap.add_argument("--fitness-steps", type=int, default=0, help="short training of each arm's best smac_3m candidate")
    ap.add_argument("--work", default=None, help="store for the runs and the LLM response cache (default: a temp dir)")
    ap.add_argument("--cache", action="store_true", help="serve requests identical to an earlier run's from <work>/cache/llm")
    ap.add_argument("--out", default=None)
    args = ap.parse_args()

    os.environ.setdefault("TFCAF_RECORD_STATES", "0")
    import torch

    torch.set_num_threads(1)
    from tfcaf.evaluator.refine import RandomPolicy, load_policy
    from tfcaf.generator.backends import BackendSettings, make_backend
    from tfcaf.generator.session import default_vetter
    from tfcaf.tasks.registry import get_card

    refiner_store = Path(args.store) if args.store else None
    arms = [(a, a) for a in args.arms] + [tuple(x.split("=", 1)) for x in args.refiner]
    policies = {label: load_policy(name, refiner_store or Path("."), seed=args.seed) for label, name in arms}
    work = Path(args.work) if args.work else Path(tempfile.mkdtemp(prefix="bench-refine-"))
    if args.out:
        Path(args.out).mkdir(parents=True, exist_ok=True)
        (Path(args.out) / "results.jsonl").write_text("", encoding="utf-8")
        OUT.append(Path(args.out) / "results.jsonl")
    lines: list[dict] = []
    backend = None if args.no_llm else make_backend(BackendSettings(name="local", threads=1))
    summaries = []
    try:
        with default_vetter(1, work) as vet:
            for task in args.tasks:
                goals = args.goals or GOALS.get(task) or []
                card = get_card(task)
                names = {f.name for f in card.features}
                goals = [g for g in goals if not g.startswith("uses_feature:") or g.split(":", 1)[1] in names]
                for label, _ in arms:
                    # random restarts its seed per task; trained refiners are loaded once
                    policy = RandomPolicy(args.seed) if dict(arms)[label] == "random" else policies[label]
                    summaries.append(run_arm(label, policy, task, goals, list(range(args.seeds)), args, backend, vet,
                                             work, lines))
    finally:
        if backend is not None:
            backend.close()
    if args.fitness_steps > 0:
        from tfcaf.trainer.fitness import short_training_fitness

        from tfcaf.sandbox.graph import graph_digest

        card = get_card("smac_3m")
        done: dict[str, float] = {}  # the same best graph in two arms is trained once (same steps, same seed)
        for s in summaries:
            if s["task"] != "smac_3m" or s["_graph"] is None:
                continue
            t0 = time.monotonic()
            digest = graph_digest(s["_graph"])
            if digest not in done:
                done[digest] = short_training_fitness(s["_graph"], card, args.fitness_steps, 0)
            emit({"kind": "fitness", "arm": s["arm"], "task": "smac_3m", "cid": s["best_cid"], "best_reward": s["best_reward"],
                  "fitness": round(done[digest], 4), "steps": args.fitness_steps, "graph_sha256": digest[:16],
                  "wall_s": round(time.monotonic() - t0, 1)}, lines)
    if args.out:
        out = Path(args.out)
        out.mkdir(parents=True, exist_ok=True)
        figure(lines, out / "figure.png")
        readme(lines, args, out / "README.md", "python benchmarks/bench_refine.py " + " ".join(_portable(sys.argv[1:])))


def _portable(argv: list[str]) -> list[str]:
    """The command line with machine-specific folders as placeholders (STORE, WORK)."""
    out, hide = [], {"--store": "STORE", "--work": "WORK"}
    for i, a in enumerate(argv):
        out.append(hide[argv[i - 1]] if i and argv[i - 1] in hide else a)
    return out


if __name__ == "__main__":
    main()
