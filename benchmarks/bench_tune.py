"""Base vs rft vs tbrm vs cory on tasks held out of training (code mode, the real vetter + tiered reward).

Training data: real `tfcaf generate` runs on the TRAINING tasks, built with `tfcaf dataset build --as-code`
(every spec-mode candidate's vetted rendered source is a code-mode answer; free-form code-mode answers of
the base are rows too). Every tuned arm gets the same budget of `--budget` training samples:

- rft, tbrm (offline): the same `--budget` dataset rows (code mode, training tasks only, answers of at most
  `--max-row-tokens` tokens so the model can write them within its answer budget; drawn per task
  round-robin with `--seed`), written to `<work>/train_rows.jsonl`; `--updates` optimizer updates of
  `--batch` rows each. rft imitates the top-rewarded of them (`tfcaf tune`'s --rft-top), tbrm fits all.
- cory (online): `--budget` answers generated during training (budget / 2 pioneer + budget / 2 observer
  answers, `--cory-group` pioneer answers per update), vetted by the real reward.
- the tbrm beta sweep: extra tbrm arms, same rows and updates, each `--beta`; evaluated on fewer samples
  (`--sweep-eval-samples` on `--sweep-eval-tasks`).

Evaluation: `--eval-samples` answers per held-out task per arm at `--temperature` (no top-k/top-p), at
most `--max-new-tokens` tokens, cut at the closing fence of the first python block, through the fast
llama.cpp sampler (base GGUF + the arm's adapter.gguf) when available, else the transformers policy. For
each arm: all-gates pass rate, mean tiered reward (no fitness/micro tiers measured: an accepted answer
scores 0.5), KL to the base (mean over `--kl-samples` of the arm's own answers per task of
sum_t log pi(y_t) - log pi_base(y_t), a Monte-Carlo estimate of KL(pi || pi_base) per answer), wall time
per update and per sample, and the short-training fitness (`tfcaf.trainer.fitness`) of the arm's best
accepted answer on `--fitness-task` (`--fitness-steps` env steps, same seed for every arm). One JSON line
per measurement; `--out` writes results.jsonl and figure.png.

    python benchmarks/bench_tune.py --phase train --data D.jsonl --work W
    python benchmarks/bench_tune.py --phase eval --data D.jsonl --work W --eval-tasks smac_3m --tag a --out R &
    python benchmarks/bench_tune.py --phase eval --data D.jsonl --work W --eval-tasks matrix_penalty \
        --arms base rft tbrm cory --tag b --out R; wait
    python benchmarks/bench_tune.py --phase report --data D.jsonl --work W --out R

(the commands that made the committed results are in benchmarks/results/tune_cpu/README.md)
"""

from __future__ import annotations

import argparse
import json
import random
import time
from pathlib import Path
from typing import Any

MAIN_ARMS = ("base", "rft", "tbrm", "cory")


def pick_rows(data: Path, tasks: list[str], budget: int, max_tokens: int, tokenizer: Any, seed: int) -> list[dict]:
    """`budget` code-mode rows of the training tasks whose answers fit in `max_tokens`, round-robin over tasks."""
    from tfcaf.evaluator.dataset import read_rows

    rng = random.Random(seed)
    per: dict[str, list[dict]] = {t: [] for t in tasks}
    for row in read_rows(data):
        if row.get("mode") == "code" and row.get("task") in per \
                and len(tokenizer(row["response"], add_special_tokens=False)["input_ids"]) < max_tokens:
            per[row["task"]].append(row)
    for rows in per.values():
        rng.shuffle(rows)
    out: list[dict] = []
    while len(out) < budget and any(per.values()):
        for t in tasks:
            if per[t] and len(out) < budget:
                out.append(per[t].pop())
    if len(out) < budget:
        raise SystemExit(f"only {len(out)} eligible rows for a budget of {budget}: generate more runs first")
    return out


def arm_specs(args: argparse.Namespace) -> dict[str, dict[str, Any]]:
    specs: dict[str, dict[str, Any]] = {"base": {}}
    offline = {"data": str(args.work / "train_rows.jsonl"), "steps": args.updates, "batch": args.batch}
    specs["rft"] = {"method": "rft", **offline}
    specs["tbrm"] = {"method": "tbrm", "beta": args.beta, **offline}
    pairs = max(1, args.budget // 2)
    specs["cory"] = {"method": "cory", "online": True, "tasks": tuple(args.train_tasks),
                     "steps": max(1, pairs // args.cory_group), "samples_per_step": args.cory_group, "swap_every": 1}
    for beta in args.sweep_betas:
        specs[f"tbrm_b{beta:g}"] = {"method": "tbrm", "beta": beta, **offline, "sweep": True}
    return specs


def train_phase(args: argparse.Namespace, emit) -> None:
    from tfcaf.generator.tuning.model import load_base
    from tfcaf.generator.tuning.rewards import vetted_reward
    from tfcaf.generator.tuning.train import TuneConfig, tune

    base = load_base(args.base)
    rows = pick_rows(args.data, args.train_tasks, args.budget, args.max_row_tokens, base.tokenizer, args.seed)
    args.work.mkdir(parents=True, exist_ok=True)
    (args.work / "train_rows.jsonl").write_text("".join(json.dumps(r, sort_keys=True) + "\n" for r in rows))
    emit({"phase": "train", "train_rows": [r["id"] for r in rows], "rewards": [r["reward"] for r in rows],
          "per_task": {t: sum(r["task"] == t for r in rows) for t in args.train_tasks}})
    del base
    with vetted_reward("code") as reward_fn:
        for arm, spec in arm_specs(args).items():
            if arm == "base" or arm not in args.arms and not (spec.get("sweep") and "sweep" in args.arms):
                continue
            spec = {k: v for k, v in spec.items() if k != "sweep"}
            cfg = TuneConfig(base=args.base, name=arm, mode="code", lr=args.lr, max_new_tokens=args.max_new_tokens,
                             temperature=args.temperature, store=str(args.work / "store"), seed=args.seed, force=True,
                             **spec)
            t0 = time.perf_counter()
            summary = tune(cfg, reward_fn=reward_fn)
            emit({"phase": "train", "arm": arm, "config": cfg.to_json(), "wall_s": round(time.perf_counter() - t0, 1),
                  **{k: summary[k] for k in ("train_s", "update_s_mean", "sample_s_mean", "online_samples",
                                             "online_mean_reward")}})


def _sampler(args: argparse.Namespace, folder: Path | None):
    """(sample(messages, seed) -> text, name): llama.cpp when it can serve the arm, else transformers."""
    if args.sampler in ("auto", "llamacpp"):
        try:
            from tfcaf.generator.tuning.serve import llamacpp_sampler

            s = llamacpp_sampler(folder, context=4096, threads=1, seed=args.seed)
            return (lambda msgs, seed: s.sample(msgs, 1, args.max_new_tokens, args.temperature, seed)[0]), s.close, "llamacpp"
        except ImportError:
            if args.sampler == "llamacpp":
                raise
    from tfcaf.generator.tuning.model import load_base
    from tfcaf.generator.tuning.policy import Policy
    from tfcaf.generator.tuning.serve import load_generator

    if folder is None:
        b = load_base(args.base)
        model, tok = b.model, b.tokenizer
    else:
        model, tok, _ = load_generator(folder)
    pol = Policy(model, tok, hasattr(model, "disable_adapter"))

    def sample(msgs, seed):
        ids = pol.sample(pol.prompt_ids(msgs), 1, args.max_new_tokens, args.temperature, seed=seed, stop_at_fence=True)[0]
        return pol.decode(ids)

    return sample, (lambda: None), "transformers"


def kl_to_base(folder: Path, answers: list[tuple[list[dict], str]]) -> float | None:
    """Mean over answers of sum_t (log pi - log pi_base) under the arm's transformers model (adapter on/off)."""
    import torch

    from tfcaf.generator.tuning.policy import Policy
    from tfcaf.generator.tuning.serve import load_generator

    if not answers:
        return None
    model, tok, _ = load_generator(folder)
    pol = Policy(model, tok, hasattr(model, "disable_adapter"))
    vals = []
    for msgs, text in answers:
        pair = (pol.prompt_ids(msgs), pol.response_ids(text))
        with torch.no_grad():
            lp, mask, _ = pol.score([pair])
            ref = pol.ref_logprobs([pair])
        vals.append(float(((lp - ref) * mask).sum()))
    return sum(vals) / len(vals)


def eval_phase(args: argparse.Namespace, emit) -> None:
    from tfcaf.generator.tuning.policy import cut_at_closing_fence
    from tfcaf.generator.tuning.rewards import vetted_reward
    from tfcaf.generator.tuning.train import _task_messages
    from tfcaf.tasks.registry import get_card
    from tfcaf.trainer.fitness import short_training_fitness

    trained = {}
    for line in (args.work / "train.jsonl").read_text().splitlines() if (args.work / "train.jsonl").is_file() else []:
        obj = json.loads(line)
        if obj.get("arm"):
            trained[obj["arm"]] = obj
    specs = arm_specs(args)
    arms = [a for a in specs if a in args.arms or (specs[a].get("sweep") and "sweep" in args.arms)]
    with vetted_reward("code") as reward_fn:
        for arm in arms:
            sweep = bool(specs[arm].get("sweep"))
            folder = None if arm == "base" else args.work / "store" / "generators" / arm
            tasks = args.sweep_eval_tasks if sweep else args.eval_tasks
            n = args.sweep_eval_samples if sweep else args.eval_samples
            t0 = time.perf_counter()
            sample, close, sampler_name = _sampler(args, folder)
            results, sample_s, kl_answers, best, not_vdn = [], [], [], None, []
            try:
                for task in tasks:
                    msgs = _task_messages(task, "code")
                    for i in range(args.first_sample, args.first_sample + n):
                        s0 = time.perf_counter()
                        raw = sample(msgs, args.seed * 100_000 + 1000 * tasks.index(task) + i)
                        sample_s.append(time.perf_counter() - s0)
                        text = cut_at_closing_fence(raw)
                        scored = reward_fn(task, text, [])
                        if scored is None:
                            emit({"arm": arm, "task": task, "sample": i, "infrastructure": True})
                            continue
                        results.append((task, scored))
                        not_vdn.append(bool(scored.passed and (((scored.verdict or {}).get("metrics") or {}).get("vdn_distance") or 0) > 1e-3))
                        if sum(1 for m, _ in kl_answers if m is msgs) < args.kl_samples:
                            kl_answers.append((msgs, text))
                        verdict = scored.verdict or {}
                        soft = {k: (verdict.get("metrics") or {}).get(k) for k in ("vdn_distance", "state_dependence")}
                        graph = verdict.get("graph") if scored.passed else None
                        if task == args.fitness_task and graph and (best is None or scored.reward > best[0]):
                            best = (scored.reward, graph, i)
                        emit({"arm": arm, "task": task, "sample": i, "reward": scored.reward, "passed": scored.passed,
                              "status": scored.info.get("status"), **soft, "chars": len(raw), "cut_chars": len(text),
                              "sample_s": round(sample_s[-1], 2)})
            finally:
                close()
            eval_s = time.perf_counter() - t0
            kl = 0.0 if folder is None else kl_to_base(folder, kl_answers)
            fitness = None
            if best is not None and args.fitness_steps and not sweep:
                f0 = time.perf_counter()
                fitness = short_training_fitness(best[1], get_card(args.fitness_task), args.fitness_steps, args.seed)
                emit({"arm": arm, "fitness_task": args.fitness_task, "fitness_sample": best[2], "fitness": fitness,
                      "fitness_steps": args.fitness_steps, "fitness_s": round(time.perf_counter() - f0, 1)})
            per_task = {}
            for task in tasks:
                mine = [s for t, s in results if t == task]
                per_task[task] = {"n": len(mine), "passed": sum(s.passed for s in mine),
                                  "mean_reward": sum(s.reward for s in mine) / max(1, len(mine)),
                                  "passed_not_vdn": sum(v for (t, _), v in zip(results, not_vdn) if t == task)}
            tr = trained.get(arm, {})
            emit({"arm": arm, "task_summary": True, "sweep": sweep, "beta": specs[arm].get("beta"), "sampler": sampler_name,
                  "n": len(results), "passed": sum(s.passed for _, s in results),
                  "pass_rate": sum(s.passed for _, s in results) / max(1, len(results)),
                  "mean_reward": sum(s.reward for _, s in results) / max(1, len(results)), "per_task": per_task,
                  "kl_to_base": kl, "kl_samples": len(kl_answers) if folder else 0,
                  "s_per_eval_sample": sum(sample_s) / max(1, len(sample_s)), "eval_wall_s": round(eval_s, 1),
                  "train_update_s": tr.get("update_s_mean"), "train_sample_s": tr.get("sample_s_mean"),
                  "train_online_samples": tr.get("online_samples"), "train_online_mean_reward": tr.get("online_mean_reward"),
                  "train_wall_s": tr.get("wall_s"),
                  "fitness": fitness if fitness is not None else ("no candidate passed" if not sweep else None)})


def merge(lines: list[dict]) -> list[dict]:
    """One summary per arm, computed from the per-sample lines of every eval process (so an eval process
    stopped early still counts the answers it scored); KL and fitness come from the processes' `task_summary`
    lines (None when the process did not get that far), training numbers from the training lines."""
    trained = {x["arm"]: x for x in lines if x.get("phase") == "train" and x.get("arm")}
    samples: dict[str, list[dict]] = {}
    parts: dict[str, list[dict]] = {}
    for x in lines:
        if x.get("task_summary"):
            parts.setdefault(x["arm"], []).append(x)
        elif "sample" in x and "reward" in x and x.get("arm"):
            samples.setdefault(x["arm"], []).append(x)
    out = []
    for arm, mine in samples.items():
        done = parts.get(arm, [])
        n = len(mine)
        kn = sum(p["kl_samples"] for p in done)
        fit = [p["fitness"] for p in done if isinstance(p.get("fitness"), float)]
        per_task: dict[str, dict] = {}
        for x in mine:
            v = per_task.setdefault(x["task"], {"n": 0, "passed": 0, "reward_sum": 0.0, "passed_not_vdn": 0})
            v["n"] += 1
            v["passed"] += bool(x["passed"])
            v["reward_sum"] += x["reward"]
            v["passed_not_vdn"] += bool(x["passed"] and (x.get("vdn_distance") or 0) > 1e-3)
        for v in per_task.values():
            v["mean_reward"] = v.pop("reward_sum") / v["n"]
        tr = trained.get(arm, {})
        sweep = bool(done[0]["sweep"]) if done else arm.startswith("tbrm_b")
        fitness = fit[0] if fit else ("no candidate passed" if any(p.get("fitness") == "no candidate passed" for p in done)
                                      else None)
        out.append({"arm": arm, "summary": True, "sweep": sweep,
                    "beta": done[0]["beta"] if done else ((tr.get("config") or {}).get("beta")
                                                          if (tr.get("config") or {}).get("method") == "tbrm" else None),
                    "sampler": done[0]["sampler"] if done else "llamacpp",
                    "complete": len(done) >= len({x["task"] for x in mine}),
                    "n": n, "passed": sum(bool(x["passed"]) for x in mine),
                    "pass_rate": sum(bool(x["passed"]) for x in mine) / max(1, n),
                    "mean_reward": sum(x["reward"] for x in mine) / max(1, n), "per_task": per_task,
                    "kl_to_base": 0.0 if arm == "base" else (sum((p["kl_to_base"] or 0.0) * p["kl_samples"] for p in done) / kn
                                                             if kn else None),
                    "kl_samples": kn, "s_per_eval_sample": sum(x["sample_s"] for x in mine) / max(1, n),
                    "train_update_s": tr.get("update_s_mean"), "train_sample_s": tr.get("sample_s_mean"),
                    "train_online_samples": tr.get("online_samples"), "train_online_mean_reward": tr.get("online_mean_reward"),
                    "train_wall_s": tr.get("wall_s"), "fitness": fitness})
    return out


def table(lines: list[dict]) -> str:
    """The markdown table of the summary lines (main arms first, then the beta sweep)."""
    def f(x, nd=3):
        return "-" if x is None else (f"{x:.{nd}f}" if isinstance(x, float) else str(x))

    head = ("| arm | beta | sampler | held-out answers | all-gates pass | accepted, not VDN | mean tiered reward | "
            "per task pass | KL to base (nats/answer, n) | s / eval sample | s / update | s / train sample | "
            "train wall s | smac_3m fitness of best |")
    out = [head, "|" + "---|" * (head.count("|") - 1)]
    rows = sorted((x for x in lines if x.get("summary")), key=lambda x: (x["sweep"], x["arm"] not in MAIN_ARMS))
    for r in rows:
        per = ", ".join(f"{t} {v['passed']}/{v['n']}" for t, v in r["per_task"].items())
        not_vdn = sum(v.get("passed_not_vdn", 0) for v in r["per_task"].values())
        out.append(f"| {r['arm']} | {f(r['beta'])} | {r['sampler']} | {r['n']} | {r['passed']}/{r['n']} ({r['pass_rate']:.2f}) | "
                   f"{not_vdn} | {r['mean_reward']:.3f} | {per} | {f(r['kl_to_base'])} ({r['kl_samples']}) | "
                   f"{r['s_per_eval_sample']:.1f} | {f(r['train_update_s'], 1)} | {f(r['train_sample_s'], 1)} | "
                   f"{f(r['train_wall_s'], 0)} | {f(r['fitness'])} |")
    return "\n".join(out) + "\n"


def figure(lines: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = [x for x in lines if x.get("summary")]
    if not rows:
        return
    fig, ax = plt.subplots(1, 3, figsize=(12, 3.2))
    names = [r["arm"] for r in rows]
    ax[0].bar(names, [r["pass_rate"] for r in rows])
    ax[0].set_title("all-gates pass rate (held-out)")
    ax[0].set_ylim(0, 1)
    ax[1].bar(names, [r["mean_reward"] for r in rows])
    ax[1].set_title("mean tiered reward (held-out)")
    ax[2].bar(names, [r["kl_to_base"] or 0.0 for r in rows])
    ax[2].set_title("KL to base (nats / answer)")
    for a in ax:
        a.tick_params(axis="x", rotation=30)
    fig.tight_layout()
    fig.savefig(path, dpi=100)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--phase", choices=("train", "eval", "report", "all"), default="all",
                    help="report merges the eval_*.jsonl files in --out (eval processes may split --eval-tasks)")
    ap.add_argument("--tag", default="all", help="name of this eval process's eval_TAG.jsonl in --out")
    ap.add_argument("--base", default="smollm2")
    ap.add_argument("--data", type=Path, required=True, help="a `tfcaf dataset build --as-code` file")
    ap.add_argument("--work", type=Path, default=Path(".tfcaf-bench/work"), help="tuned generators + training rows")
    ap.add_argument("--train-tasks", nargs="+", default=["matrix_climbing", "lbf_8x8-2p-3f", "lbf_2s-8x8-2p-2f-coop",
                                                         "mpe_simple_spread"])
    ap.add_argument("--eval-tasks", nargs="+", default=["smac_3m", "matrix_penalty"])
    ap.add_argument("--arms", nargs="+", default=[*MAIN_ARMS, "sweep"], help="base rft tbrm cory sweep")
    ap.add_argument("--budget", type=int, default=8, help="training samples per tuned arm (see the docstring)")
    ap.add_argument("--updates", type=int, default=8, help="optimizer updates of the offline arms")
    ap.add_argument("--batch", type=int, default=1)
    ap.add_argument("--cory-group", type=int, default=2, help="pioneer answers per CORY update")
    ap.add_argument("--max-row-tokens", type=int, default=384)
    ap.add_argument("--max-new-tokens", type=int, default=384)
    ap.add_argument("--temperature", type=float, default=0.8)
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--beta", type=float, default=0.01, help="tbrm's beta in the main table")
    ap.add_argument("--sweep-betas", type=float, nargs="*", default=[0.003, 0.03])
    ap.add_argument("--eval-samples", type=int, default=20)
    ap.add_argument("--first-sample", type=int, default=0,
                    help="index of the first eval answer (its seed); a later process with --first-sample 10 adds answers 10.. to 0..9")
    ap.add_argument("--sweep-eval-samples", type=int, default=10)
    ap.add_argument("--sweep-eval-tasks", nargs="+", default=["smac_3m"])
    ap.add_argument("--kl-samples", type=int, default=4, help="answers per task for the KL estimate")
    ap.add_argument("--fitness-task", default="smac_3m")
    ap.add_argument("--fitness-steps", type=int, default=5000)
    ap.add_argument("--sampler", choices=("auto", "llamacpp", "transformers"), default="auto")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", type=Path, default=None, help="folder for results.jsonl and figure.png")
    args = ap.parse_args()

    import torch

    torch.set_num_threads(1)
    lines: list[dict] = []

    def emitter(path: Path | None):
        def emit(obj: dict) -> None:
            obj = {"bench": "tune", "t": round(time.time(), 1), **obj}
            print(json.dumps(obj, default=str), flush=True)
            lines.append(obj)
            if path is not None:
                with open(path, "a", encoding="utf-8") as fh:
                    fh.write(json.dumps(obj, default=str) + "\n")
        return emit

    args.work.mkdir(parents=True, exist_ok=True)
    cfg = {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()}
    if args.phase in ("train", "all"):
        (args.work / "train.jsonl").write_text("")
        emit = emitter(args.work / "train.jsonl")
        emit({"phase": "train", "config": cfg})
        train_phase(args, emit)
    if args.phase in ("eval", "all"):
        results = None
        if args.out:
            args.out.mkdir(parents=True, exist_ok=True)
            results = args.out / f"eval_{args.tag}.jsonl"
            results.write_text("")
        emit = emitter(results)
        emit({"phase": "eval", "config": cfg})
        eval_phase(args, emit)
    if args.out and args.phase in ("report", "all"):
        report(args)


def report(args: argparse.Namespace) -> None:
    """results.jsonl (training lines, every eval process's lines, one merged summary per arm), table.md, figure.png."""
    train = (args.work / "train.jsonl").read_text() if (args.work / "train.jsonl").is_file() else ""
    evals = "".join(p.read_text() for p in sorted(args.out.glob("eval_*.jsonl")))
    lines = [json.loads(x) for x in (train + evals).splitlines() if x.strip()]
    merged = merge(lines)
    for m in merged:
        print(json.dumps({"bench": "tune", **m}, default=str), flush=True)
    (args.out / "results.jsonl").write_text(train + evals + "".join(json.dumps({"bench": "tune", **m}, default=str) + "\n"
                                                                    for m in merged))
    figure(merged, args.out / "figure.png")
    (args.out / "table.md").write_text(table(merged))


if __name__ == "__main__":
    main()
