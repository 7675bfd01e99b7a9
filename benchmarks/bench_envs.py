"""Env-steps per second per task family at E = 1, 64, 512, through tfcaf's batched torch interface
(random available actions drawn in torch, data landing in torch tensors), and SMAX stepped raw in JAX
side by side (the issue's done-criterion: torch-batched smac_3m within 2x of raw SMAX).

Prints one JSON line per measurement: median env-steps/s over `--repeats` runs of `--steps` steps,
adapter and raw runs interleaved so machine load hits both alike.

    python3 benchmarks/bench_envs.py                        # all families, E = 1, 64, 512, CPU
    python3 benchmarks/bench_envs.py --tasks smac_3m --envs 64 512 --repeats 7
    python3 benchmarks/bench_envs.py --device cuda          # on a GPU machine
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import time

os.environ.setdefault("XLA_PYTHON_CLIENT_PREALLOCATE", "false")

DEFAULT_TASKS = ("smac_3m", "lbf_8x8-2p-3f", "mpe_simple_spread", "vmas_simple_spread", "vmas_navigation")


def _steps_for(task: str, e: int, steps: int) -> int:
    # Python-loop simulators step E copies one by one: keep their big-E runs short
    if task.startswith(("lbf_", "mpe_")) and e >= 64:
        return max(5, steps // (e // 16))
    return steps


def bench_adapter(task: str, e: int, steps: int, repeats: int, device: str, raw: bool) -> list[dict]:
    import torch

    from tfcaf.tasks.env import random_actions
    from tfcaf.tasks.registry import make_env

    env = make_env(task, n_envs=e, device=device, seed=0)
    gen = torch.Generator(device=device).manual_seed(0)
    t0 = time.perf_counter()
    out = env.reset(seed=0)
    for _ in range(3):  # compile / warm up
        out = env.step(random_actions(out.avail_actions, gen))
    warm_s = time.perf_counter() - t0
    k = _steps_for(task, e, steps)
    raw_run = _raw_smax_runner(env, e) if raw else None
    ours, theirs, theirs_step_only = [], [], []
    for _ in range(repeats):
        t = time.perf_counter()
        for _ in range(k):
            out = env.step(random_actions(out.avail_actions, gen))
        _ = out.state.sum().item()  # data is in torch and usable
        ours.append(e * k / (time.perf_counter() - t))
        if raw_run is not None:
            theirs.append(e * k / raw_run(k, sample=True))
            theirs_step_only.append(e * k / raw_run(k, sample=False))
    base = {"task": task, "family": env.card.family, "E": e, "device": device, "steps": k, "repeats": repeats,
            "warmup_s": round(warm_s, 2), "host": platform.node()}
    rows = [{**base, "what": "tfcaf batched env -> torch (random available actions)",
             "env_steps_per_s": round(statistics.median(ours), 1)}]
    if raw_run is not None:
        med_raw, med_step = statistics.median(theirs), statistics.median(theirs_step_only)
        med = statistics.median(ours)
        rows.append({**base, "what": "raw SMAX in JAX: jit(vmap(avail + sample + env.step))", "env_steps_per_s": round(med_raw, 1),
                     "ratio_raw_over_tfcaf": round(med_raw / med, 2)})
        rows.append({**base, "what": "raw SMAX in JAX: jit(vmap(env.step)), fixed actions", "env_steps_per_s": round(med_step, 1),
                     "ratio_raw_over_tfcaf": round(med_step / med, 2)})
    env.close()
    return rows


def _raw_smax_runner(env: object, e: int):
    """A closure timing k raw SMAX steps with states kept in JAX (what a pure-JAX user would run)."""
    import jax
    import jax.numpy as jnp

    fns = env.fns  # type: ignore[attr-defined]
    smax, agents = fns.env, fns.env.agents

    def act(key, st):
        avail = smax.get_avail_actions(st)
        keys = jax.random.split(key, len(agents))
        return {ag: jax.random.categorical(keys[i], jnp.log(avail[ag].astype(jnp.float32))) for i, ag in enumerate(agents)}

    def one(key, st):
        k_act, k_step = jax.random.split(key)
        actions = act(k_act, st)
        _, st2, rew, dones, _ = smax.step(k_step, st, actions)
        return st2, rew[agents[0]]

    sample_step = jax.jit(jax.vmap(one))
    fixed = {ag: jnp.full((e,), 4, jnp.int32) for ag in agents}  # stop: always available
    step_only = fns.raw_step
    keys = jax.random.split(jax.random.PRNGKey(1), e)
    _, state = jax.jit(jax.vmap(smax.reset))(keys)
    state = jax.tree.map(lambda x: x.astype(x.dtype), state)
    for _ in range(2):
        state, r = sample_step(keys, state)
        state2 = step_only(keys, state, fixed)[1]
    jax.block_until_ready((r, state2))
    holder = {"state": state, "key": jax.random.PRNGKey(2)}

    def run(k: int, sample: bool) -> float:
        st, key = holder["state"], holder["key"]
        t = time.perf_counter()
        for _ in range(k):
            key, sub = jax.random.split(key)
            ks = jax.random.split(sub, e)
            if sample:
                st, r = sample_step(ks, st)
            else:
                _, st, r, _, _ = step_only(ks, st, fixed)
        jax.block_until_ready(st)
        dt = time.perf_counter() - t
        holder["state"], holder["key"] = st, key
        return dt

    return run


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--tasks", nargs="+", default=list(DEFAULT_TASKS))
    ap.add_argument("--envs", nargs="+", type=int, default=[1, 64, 512])
    ap.add_argument("--steps", type=int, default=50, help="steps per timed run")
    ap.add_argument("--repeats", type=int, default=5, help="timed runs per setting (median reported)")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()

    import torch

    from tfcaf.errors import MissingDependencyError

    torch.set_num_threads(args.threads)
    for task in args.tasks:
        for e in args.envs:
            try:
                rows = bench_adapter(task, e, args.steps, args.repeats, args.device, raw=task.startswith("smac_"))
            except MissingDependencyError as err:
                rows = [{"task": task, "E": e, "skipped": str(err)}]
            for row in rows:
                print(json.dumps(row), flush=True)


if __name__ == "__main__":
    main()
