"""Trainer benchmarks; one JSON line per measurement (medians over repeats, ratios measured in one run).

    python3 benchmarks/bench_train.py update      # one learner update (32 episodes x T x N) per mixer, eager vs torch.compile
    python3 benchmarks/bench_train.py throughput  # env-steps/s including learning: pymarl ratio and E in {8, 16, 64}
    python3 benchmarks/bench_train.py efficiency --task matrix_climbing --seeds 5 --steps 10000 --out report/climbing
                                                  # VDN vs QMIX vs the hand-written reference over seeds, then `tfcaf report`

Options: --task smac_3m (repeatable), --repeats 7, --device cpu, --seconds 20 (per throughput setting), --compile.
Timings on a shared machine are noisy: compare ratios taken side by side, not absolute numbers across runs.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

import torch

from tfcaf.runtime import configure_torch
from tfcaf.tasks.registry import TASKS, get_card, make_env
from tfcaf.trainer.agent import RNNAgent, input_dim
from tfcaf.trainer.buffer import ReplayBuffer, empty_batch
from tfcaf.trainer.collector import Collector
from tfcaf.trainer.config import resolve_config
from tfcaf.trainer.learner import Learner
from tfcaf.trainer.mixers import CreditFunctionMixer, build_mixer


def emit(**record: object) -> None:
    print(json.dumps(record), flush=True)


def graph_mixer(card, device: str) -> torch.nn.Module:
    """The hand-written reference exported to a plain-data graph and rebuilt, as `tfcaf:<name>` would be."""
    from tfcaf.sandbox.export import export_graph
    from tfcaf.sandbox.graph import load_graph
    from tfcaf.trainer.reference import handwritten_for

    fn = handwritten_for(card)
    graph = export_graph(lambda q, s: fn(q, s), card.n_agents, card.state_dim)
    return CreditFunctionMixer(load_graph(graph, device), card.n_agents, card.state_dim).to(device)


def random_batch(card, b: int, t: int, device: str) -> "object":
    g = torch.Generator().manual_seed(0)
    batch = empty_batch(b, t, card.n_agents, card.obs_dim, card.state_dim, card.n_actions, device)
    batch.obs.copy_(torch.rand(batch.obs.shape, generator=g))
    batch.state.copy_(torch.rand(batch.state.shape, generator=g))
    batch.avail.fill_(True)
    batch.actions.copy_(torch.randint(0, card.n_actions, batch.actions.shape, generator=g))
    batch.reward.copy_(torch.rand(batch.reward.shape, generator=g))
    batch.mask.fill_(True)
    batch.length.fill_(t)
    return batch


def bench_update(task: str, repeats: int, device: str, compile_too: bool) -> None:
    card = get_card(task)
    cfg, _ = resolve_config(card.family)
    t = card.episode_limit
    batch = random_batch(card, cfg.batch_size, t, device)
    variants: dict[str, Learner] = {}
    from tfcaf.trainer.reference import has_handwritten

    names = ("vdn", "qmix", "handwritten", "tfcaf-graph") if has_handwritten(card) else ("vdn", "qmix")
    for name in names:
        for compiled in ((False, True) if compile_too and name in ("qmix", "tfcaf-graph") else (False,)):
            torch.manual_seed(0)
            agent = RNNAgent(input_dim(card.obs_dim, card.n_agents, card.n_actions, True, True), card.n_actions).to(device)
            mixer = graph_mixer(card, device) if name == "tfcaf-graph" else build_mixer(name, card, cfg, device).module
            variants[name + (" compiled" if compiled else "")] = Learner(agent, mixer, cfg.replace(compile_mixer=compiled), card.n_actions)
    compile_s = {}
    for key, learner in variants.items():
        start = time.perf_counter()
        learner.update(batch)
        learner.update(batch)
        compile_s[key] = time.perf_counter() - start
    times: dict[str, list[float]] = {k: [] for k in variants}
    for _ in range(repeats):  # interleaved, so load changes hit every variant alike
        for key, learner in variants.items():
            start = time.perf_counter()
            learner.update(batch)
            times[key].append(time.perf_counter() - start)
    base = statistics.median(times["qmix"])
    for key, ts in times.items():
        med = statistics.median(ts)
        emit(bench="update", task=task, mixer=key, batch=cfg.batch_size, T=t, N=card.n_agents, device=device,
             median_ms=round(1000 * med, 2), ratio_to_qmix=round(med / base, 3), repeats=repeats,
             first_two_updates_s=round(compile_s[key], 2))


def bench_throughput(task: str, seconds: float, device: str) -> None:
    card = get_card(task)
    cfg, _ = resolve_config(card.family)
    settings = [("pymarl_ratio", e, 0) for e in (8, 16, 64)] + [("one_update_per_E_episodes", e, 1) for e in (8, 16, 64)]
    for label, n_envs, updates in settings:
        torch.manual_seed(0)
        agent = RNNAgent(input_dim(card.obs_dim, card.n_agents, card.n_actions, True, True), card.n_actions).to(device)
        learner = Learner(agent, build_mixer("qmix", card, cfg, device).module, cfg, card.n_actions)
        env = make_env(task, n_envs=n_envs, device=device, seed=0)
        collector = Collector(env, agent, generator=torch.Generator(device=device).manual_seed(0))
        buffer = ReplayBuffer(1000, card.episode_limit, card.n_agents, card.obs_dim, card.state_dim, card.n_actions, device)
        while len(buffer) < 64:  # warm-up: compiles the env, fills the buffer
            buffer.add(collector.run(n_envs, 1.0))
        learner.update(buffer.sample(32))
        steps = episodes = n_updates = 0
        t_collect = t_learn = 0.0
        start = time.perf_counter()
        while time.perf_counter() - start < seconds:
            a = time.perf_counter()
            before = collector.env_steps
            batch = collector.run(n_envs, 0.3)  # a fixed epsilon: episode lengths stay comparable across settings
            b = time.perf_counter()
            buffer.add(batch)
            for _ in range(updates or batch.size):
                learner.update(buffer.sample(32))
                n_updates += 1
            t_collect += b - a
            t_learn += time.perf_counter() - b
            steps += collector.env_steps - before
            episodes += batch.size
        wall = time.perf_counter() - start
        env.close()
        emit(bench="throughput", task=task, mixer="qmix", setting=label, n_envs=n_envs, device=device,
             env_steps_per_s=round(steps / wall, 1), updates_per_1k_steps=round(1000 * n_updates / max(steps, 1), 2),
             mean_episode_length=round(steps / max(episodes, 1), 1), collect_share=round(t_collect / wall, 3),
             learn_share=round(t_learn / wall, 3), wall_s=round(wall, 1), env_steps=steps)


def bench_efficiency(task: str, seeds: int, steps: int | None, mixers: list[str], store: str, out: str) -> None:
    from pathlib import Path

    from tfcaf.trainer.report import report
    from tfcaf.trainer.run import Run

    card = get_card(task)
    runs = []
    for seed in range(seeds):
        for mixer in mixers:
            flags = {"seed": seed, "steps": steps, "tensorboard": False}
            cfg, source = resolve_config(card.family, flags=flags)
            run = Run.start(task, mixer, cfg, store=store, config_source=source)
            summary = run.train()
            runs.append(str(run.path))
            emit(bench="efficiency_run", **{k: summary[k] for k in ("task", "mixer", "seed", "env_steps", "wall_s",
                                                                    "env_steps_per_s", "test_return_mean", "test_win_rate")})
    result = report(runs, Path(out))
    for row in result["rows"]:
        emit(bench="efficiency", **row)
    emit(bench="efficiency_report", png=result["png"], table=result["table_md"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("what", choices=("update", "throughput", "efficiency", "all"))
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--steps", type=int, default=None, help="efficiency: env steps per run (default: the family's)")
    parser.add_argument("--mixer", action="append", help="efficiency: mixers (default vdn, qmix, handwritten)")
    parser.add_argument("--store", default=".tfcaf-bench", help="efficiency: store for the runs")
    parser.add_argument("--out", default="report/efficiency", help="efficiency: report folder")
    parser.add_argument("--task", action="append")
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--compile", action="store_true", help="also time torch.compile'd mixers (slow to compile on CPU)")
    args = parser.parse_args()
    configure_torch(1, args.device)
    if args.what in ("update", "all"):
        for task in args.task or ["smac_3m"]:
            bench_update(task, args.repeats, args.device, args.compile)
    if args.what in ("throughput", "all"):
        for task in args.task or [t for t in ("lbf_8x8-2p-3f", "smac_3m") if t in TASKS]:
            bench_throughput(task, args.seconds, args.device)
    if args.what == "efficiency":
        for task in args.task or ["matrix_climbing"]:
            bench_efficiency(task, args.seeds, args.steps, args.mixer or ["vdn", "qmix", "handwritten"], args.store,
                             f"{args.out}/{task}" if len(args.task or [1]) > 1 else args.out)


if __name__ == "__main__":
    main()
