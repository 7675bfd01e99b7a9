"""Trainer benchmarks; one JSON line per measurement (medians over repeats, ratios measured in one run).

    python3 benchmarks/bench_train.py update      # one learner update (32 episodes x T x N) per mixer, eager vs torch.compile
    python3 benchmarks/bench_train.py throughput  # env-steps/s including learning: pymarl ratio and E in {8, 16, 64}
    python3 benchmarks/bench_train.py efficiency --task matrix_climbing --seeds 5 --steps 10000 --out report/climbing
                                                  # arms over seeds (default vdn, qmix, happo, hatrpo, mappo), then `tfcaf report`
    python3 benchmarks/bench_train.py algos --task smac_3m --envs 16 --envs 64 --envs 256
                                                  # env-steps/s including learning: happo / mappo vs qmix, side by side

An arm is a mixer of value decomposition (vdn, qmix, handwritten, tfcaf:NAME) or an algorithm (happo,
hatrpo, mappo): `--arm` (repeatable) takes either.

Options: --task smac_3m (repeatable), --repeats 7, --device cpu, --seconds 20 (per throughput setting), --compile.
Timings on a shared machine are noisy: compare ratios taken side by side, not absolute numbers across runs.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

import torch

from pathlib import Path

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


def split_arm(arm: str) -> tuple[str, str | None]:
    """'happo' -> ('happo', None); 'qmix' / 'tfcaf:NAME' -> ('vd', 'qmix')."""
    from tfcaf.trainer.algos import ALGOS

    if arm in ALGOS and arm != "vd":
        return arm, None
    return "vd", arm


def bench_efficiency(task: str, seeds: int, steps: int | None, arms: list[str], store: str, out: str,
                     seed0: int = 0) -> None:
    from pathlib import Path

    from tfcaf.trainer.report import report
    from tfcaf.trainer.run import Run

    card = get_card(task)
    runs = []
    for seed in range(seed0, seed0 + seeds):
        for arm in arms:
            algo, mixer = split_arm(arm)
            flags = {"seed": seed, "steps": steps, "tensorboard": False}
            cfg, source = resolve_config(card.family, flags=flags, algo=algo)
            run = Run.start(task, mixer, cfg, store=store, config_source=source, algo=algo)
            summary = run.train()
            runs.append(str(run.path))
            emit(bench="efficiency_run", **{k: summary[k] for k in ("task", "algo", "arm", "seed", "env_steps", "wall_s",
                                                                    "env_steps_per_s", "test_return_mean", "test_win_rate")})
    result = report(runs, Path(out))
    for row in result["rows"]:
        emit(bench="efficiency", **row)
    emit(bench="efficiency_report", png=result["png"], table=result["table_md"])


def bench_algos(task: str, envs: list[int], seconds: float, device: str, arms: list[str]) -> None:
    """env-steps/s including learning, each arm with its own algorithm's schedule (qmix: pymarl's one update
    per episode, batch 32; happo/mappo: one iteration per rollout_length x E steps), at each E, side by side."""
    import tempfile

    from tfcaf.trainer.onpolicy import RolloutCollector
    from tfcaf.trainer.run import Run

    card = get_card(task)
    for n_envs in envs:
        results = {}
        for arm in arms:
            algo, mixer = split_arm(arm)
            cfg, _ = resolve_config(card.family, flags={"n_envs": n_envs, "tensorboard": False}, algo=algo)
            built = None
            if arm == "tfcaf-graph":  # the hand-written reference through a rebuilt plain-data graph
                from tfcaf.trainer.mixers import BuiltMixer

                built, mixer = BuiltMixer(graph_mixer(card, device), "tfcaf:graph", False, {}), None
            with tempfile.TemporaryDirectory() as tmp:
                run = Run(Path(tmp), task, mixer, cfg, device, Path(tmp), mixer=built, algo=algo)
            env = make_env(task, n_envs=n_envs, device=device, seed=0)
            steps = iters = updates = 0
            t_collect = t_learn = 0.0
            if algo == "vd":
                collector = Collector(env, run.agent, generator=torch.Generator(device=device).manual_seed(0))
                buffer = ReplayBuffer(max(1000, 2 * n_envs), card.episode_limit, card.n_agents, card.obs_dim,
                                      card.state_dim, card.n_actions, device)
                while len(buffer) < 64:  # warm-up: compiles the env, fills the buffer
                    buffer.add(collector.run(n_envs, 1.0))
                run.learner.update(buffer.sample(32))

                def iteration() -> tuple[int, float, int]:
                    a = time.perf_counter()
                    before = collector.env_steps
                    batch = collector.run(n_envs, 0.3)
                    b = time.perf_counter()
                    buffer.add(batch)
                    for _ in range(batch.size):
                        run.learner.update(buffer.sample(32))
                    return collector.env_steps - before, b - a, batch.size
            else:
                rc = RolloutCollector(env, run.policy, run.critic, cfg.rollout_length, generator=run.generator)
                run.learner.update(rc.run())  # warm-up

                def iteration() -> tuple[int, float, int]:
                    a = time.perf_counter()
                    before = rc.env_steps
                    ro = rc.run()
                    b = time.perf_counter()
                    run.learner.update(ro)
                    return rc.env_steps - before, b - a, 1
            start = time.perf_counter()
            while time.perf_counter() - start < seconds or iters == 0:
                a = time.perf_counter()
                n, collect_s, u = iteration()
                steps += n
                t_collect += collect_s
                t_learn += time.perf_counter() - a - collect_s
                iters += 1
                updates += u
            wall = time.perf_counter() - start
            env.close()
            results[arm] = steps / wall
            emit(bench="throughput_algos", task=task, arm=arm, algo=algo, n_envs=n_envs, device=device,
                 env_steps_per_s=round(steps / wall, 1), iterations=iters, updates=updates, env_steps=steps,
                 collect_share=round(t_collect / wall, 3), learn_share=round(t_learn / wall, 3), wall_s=round(wall, 1))
        base = results.get("qmix")
        if base:
            emit(bench="throughput_ratio", task=task, n_envs=n_envs, device=device,
                 **{f"{arm}_over_qmix": round(v / base, 2) for arm, v in results.items() if arm != "qmix"})


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("what", choices=("update", "throughput", "efficiency", "algos", "all"))
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--steps", type=int, default=None, help="efficiency: env steps per run (default: the family's)")
    parser.add_argument("--mixer", action="append", help="efficiency: mixers (kept for old commands; same as --arm)")
    parser.add_argument("--arm", action="append", help="efficiency / algos: mixers or algorithms (repeatable)")
    parser.add_argument("--envs", type=int, action="append", help="algos: E values (default 16, 64, 256)")
    parser.add_argument("--seed0", type=int, default=0, help="efficiency: first seed")
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
    arms = (args.mixer or []) + (args.arm or [])
    if args.what == "efficiency":
        for task in args.task or ["matrix_climbing"]:
            bench_efficiency(task, args.seeds, args.steps, arms or ["vdn", "qmix", "happo", "hatrpo", "mappo"], args.store,
                             f"{args.out}/{task}" if len(args.task or [1]) > 1 else args.out, args.seed0)
    if args.what == "algos":
        for task in args.task or [t for t in ("smac_3m", "lbf_8x8-2p-3f") if t in TASKS]:
            bench_algos(task, args.envs or [16, 64, 256], args.seconds, args.device, arms or ["qmix", "happo", "mappo"])


if __name__ == "__main__":
    main()
