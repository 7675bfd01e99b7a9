"""Base vs rft vs tbrm vs cory on tasks held out of training (code mode, the real vetter + tiered reward).

Each tuned arm gets the same budget of generated training samples (`--train-samples`), drawn online from
its own current model (rft: groups of 2 per update; tbrm: one per update, replayed from its pool; cory:
one pioneer + one observer answer per update). Every arm, the base included, is then sampled
`--eval-samples` times per held-out task with the same sampler (transformers, temperature 1). Prints one
JSON line per arm and per measurement; `--out` also writes the lines and a figure.

    python benchmarks/bench_tune.py --train-tasks matrix_climbing --eval-tasks matrix_penalty \
        --train-samples 4 --eval-samples 3 --max-new-tokens 256 --out benchmarks/results/tune_cpu
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path


def kl_to_base(model, tokenizer, pairs) -> float:
    """Mean sampled sequence KL sum_t (log pi - log pi_base) of the arm's own eval answers."""
    import torch

    from tfcaf.generator.tuning.policy import Policy

    if not hasattr(model, "disable_adapter"):
        return 0.0
    pol = Policy(model, tokenizer, True)
    vals = []
    for pair in pairs:
        with torch.no_grad():
            lp, mask, _ = pol.score([pair])
            ref = pol.ref_logprobs([pair])
        vals.append(float(((lp - ref) * mask).sum()))
    return sum(vals) / max(1, len(vals))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--base", default="smollm2")
    ap.add_argument("--train-tasks", nargs="+", default=["matrix_climbing"])
    ap.add_argument("--eval-tasks", nargs="+", default=["matrix_penalty"])
    ap.add_argument("--arms", nargs="+", default=["base", "rft", "tbrm", "cory"])
    ap.add_argument("--train-samples", type=int, default=4)
    ap.add_argument("--eval-samples", type=int, default=3)
    ap.add_argument("--max-new-tokens", type=int, default=256)
    ap.add_argument("--lr", type=float, default=1e-4)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", default=None, help="folder for results.jsonl and figure.png")
    args = ap.parse_args()

    import torch

    torch.set_num_threads(1)
    from tfcaf.generator.tuning.model import load_base
    from tfcaf.generator.tuning.policy import Policy
    from tfcaf.generator.tuning.rewards import vetted_reward
    from tfcaf.generator.tuning.serve import load_generator
    from tfcaf.generator.tuning.train import TuneConfig, _task_messages, tune

    out = Path(args.out) if args.out else None
    lines = []

    def emit(obj):
        print(json.dumps(obj), flush=True)
        lines.append(obj)
        if out:
            out.mkdir(parents=True, exist_ok=True)
            (out / "results.jsonl").write_text("".join(json.dumps(x) + "\n" for x in lines))

    store = Path(tempfile.mkdtemp(prefix="bench_tune_"))
    budget = args.train_samples
    steps = {"rft": max(1, budget // 2), "tbrm": budget, "cory": max(1, budget // 2)}
    emit({"bench": "tune", "config": vars(args), "train_steps": steps,
          "note": "equal budget of generated training samples per tuned arm"})
    with vetted_reward("code") as reward_fn:
        for arm in args.arms:
            t0 = time.perf_counter()
            summary = None
            if arm == "base":
                base = load_base(args.base)
                model, tok = base.model, base.tokenizer
            else:
                cfg = TuneConfig(method=arm, base=args.base, name=arm, online=True, tasks=tuple(args.train_tasks),
                                 steps=steps[arm], samples_per_step=1 if arm == "cory" else 2, batch=2 if arm != "tbrm" else 1, lr=args.lr,
                                 max_new_tokens=args.max_new_tokens, swap_every=1, store=str(store), seed=args.seed)
                summary = tune(cfg, reward_fn=reward_fn)
                model, tok, _ = load_generator(store / "generators" / arm)
            pol = Policy(model, tok, hasattr(model, "disable_adapter"))
            per, pairs, rewards, passed, sample_s = {}, [], [], 0, []
            for task in args.eval_tasks:
                prompt = pol.prompt_ids(_task_messages(task, "code"))
                task_r = []
                for i in range(args.eval_samples):
                    s0 = time.perf_counter()
                    ids = pol.sample(prompt, 1, args.max_new_tokens, 1.0, seed=args.seed * 1000 + i)[0]
                    sample_s.append(time.perf_counter() - s0)
                    scored = reward_fn(task, pol.decode(ids), ids)
                    pairs.append((prompt, ids))
                    if scored is None:
                        continue
                    task_r.append(scored.reward)
                    passed += scored.passed
                    emit({"arm": arm, "task": task, "sample": i, "reward": scored.reward, "passed": scored.passed,
                          "status": scored.info.get("status"), "tokens": len(ids)})
                rewards += task_r
                per[task] = sum(task_r) / max(1, len(task_r))
            emit({"arm": arm, "summary": True, "eval_tasks": args.eval_tasks, "n": len(rewards),
                  "pass_rate": passed / max(1, len(rewards)), "mean_reward": sum(rewards) / max(1, len(rewards)),
                  "per_task_reward": per, "kl_to_base": kl_to_base(model, tok, pairs),
                  "wall_s_per_eval_sample": sum(sample_s) / max(1, len(sample_s)),
                  "train_update_s": summary["update_s_mean"] if summary else None,
                  "train_sample_s": summary["sample_s_mean"] if summary else None,
                  "train_online_samples": summary["online_samples"] if summary else 0,
                  "train_mean_reward": summary["online_mean_reward"] if summary else None,
                  "arm_wall_s": time.perf_counter() - t0})
            del model, pol
    if out:
        figure(lines, out / "figure.png")


def figure(lines, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = [x for x in lines if x.get("summary")]
    if not rows:
        return
    fig, ax = plt.subplots(1, 2, figsize=(8, 3))
    names = [r["arm"] for r in rows]
    ax[0].bar(names, [r["mean_reward"] for r in rows])
    ax[0].set_title("mean tiered reward (held-out)")
    ax[1].bar(names, [r["pass_rate"] for r in rows])
    ax[1].set_title("all-gates pass rate")
    ax[1].set_ylim(0, 1)
    fig.tight_layout()
    fig.savefig(path, dpi=100)


if __name__ == "__main__":
    main()
