"""One training run: its directory, the train/test loop, checkpoints, resume and divergence handling.

Run directory `<store>/train/<task>/<run-id>/`:

    config.json        the resolved TrainConfig and where each value came from
    provenance.json    task, algo, arm, mixer, mixer hashes, device, seeds, package versions, command
    metrics.jsonl      append-only lines: {"kind": "train"|"test"|"resume"|"diverged"|"failed"|"done", "env_steps": ...}
    tb/                TensorBoard event files
    checkpoint.pt      the last good checkpoint (written atomically: temp file, then rename)
    status.json        running / done / diverged / failed, with the last summary or the error

Two data paths, chosen by the algorithm's registry entry (`algos.ALGOS[...].path`): `replay` (value
decomposition: episodes into a replay buffer, updates sampled from it) and `rollout` (HAPPO, HATRPO,
MAPPO: one update per fixed-length rollout of E envs). Everything else is shared: env interface, seeds,
step budgets, greedy tests, logging at env-step intervals, checkpoints and resume, NaN stop.

Determinism: with the same task, algorithm, seed and config, every metrics.jsonl row matches on CPU
except its wall-clock fields (`env_steps_per_s`, `wall_s`). All randomness comes from torch generators
seeded from `seed` (network init is seeded before anything is built).

The replay buffer is not checkpointed (5000 SMAX episodes are ~0.6 GB); a resumed run refills it
before its next update, which is the only way it differs from an uninterrupted run. A resumed
on-policy run restarts its envs (its next rollout begins fresh episodes).
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path
from typing import Any, Callable

import torch

from tfcaf.errors import RejectedError, UsageError
from tfcaf.files import dumps
from tfcaf.provenance import versions
from tfcaf.runtime import configure_torch
from tfcaf.store import new_run_id, store_dir, write_atomic
from tfcaf.tasks.registry import get_card, make_env
from tfcaf.trainer.agent import RNNAgent, input_dim
from tfcaf.trainer.algos import DEFAULT_ALGO, arm_name, get_algo
from tfcaf.trainer.buffer import ReplayBuffer
from tfcaf.trainer.collector import Collector, epsilon_at
from tfcaf.trainer.config import TrainConfig
from tfcaf.trainer.haml import DivergedPG
from tfcaf.trainer.learner import DivergedError, Learner
from tfcaf.trainer.mixers import BuiltMixer, build_mixer, verify_hashes

Progress = Callable[[int, int, dict[str, Any]], None]


def write_json_atomic(path: Path, data: Any) -> None:
    write_atomic(path, dumps(data, indent=2, sort_keys=True, default=str))


def find_run(run: str, store: Path) -> Path:
    """A run directory from its path or its id (searched under <store>/train/*/)."""
    p = Path(run)
    if (p / "config.json").is_file():
        return p
    hits = sorted((store / "train").glob(f"*/{run}")) if (store / "train").is_dir() else []
    hits = [h for h in hits if (h / "config.json").is_file()]
    if len(hits) == 1:
        return hits[0]
    raise UsageError(f"no training run '{run}' (give a run directory or a run id under {store / 'train'}).")


class Run:
    """A training run bound to its directory. Build with `Run.start(...)` or `Run.resume(...)`."""

    def __init__(self, path: Path, task: str, mixer_name: str | None, cfg: TrainConfig, device: str, store: Path,
                 recorded_hashes: dict[str, Any] | None = None, mixer: BuiltMixer | None = None,
                 algo: str = DEFAULT_ALGO) -> None:
        configure_torch(cfg.threads, device)
        self.path, self.task, self.cfg, self.device, self.store = path, task, cfg, device, store
        self.spec = get_algo(algo)
        self.card = get_card(task)
        card = self.card
        if self.spec.uses_mixer and not mixer_name and mixer is None:
            mixer_name = "qmix"
        if not self.spec.uses_mixer and (mixer_name or mixer is not None):
            raise UsageError(f"--mixer does not apply to --algo {algo}: {algo} learns a centralised V critic, not a "
                             "mixed Q. Drop --mixer, or use --algo vd with it.")
        # Seed before building anything: network init draws from torch's global generator (QMIX's
        # hypernetworks were once built before the seed, so losses differed run to run).
        torch.manual_seed(cfg.seed)
        self.mixer: BuiltMixer | None = None
        if self.spec.uses_mixer:
            # `mixer` is for in-process callers that already hold a trusted module (the generate loop's
            # short-training fitness on a rebuilt graph); the CLI always resolves a name.
            self.mixer = mixer if mixer is not None else build_mixer(str(mixer_name), card, cfg, device, store)
            if recorded_hashes is not None:
                verify_hashes(recorded_hashes, self.mixer)
        torch.manual_seed(cfg.seed)
        if self.spec.path == "replay":
            self.agent = RNNAgent(input_dim(card.obs_dim, card.n_agents, card.n_actions, cfg.agent_id, cfg.last_action),
                                  card.n_actions, cfg.agent_hidden).to(device)
            assert self.mixer is not None
            self.learner: Any = Learner(self.agent, self.mixer.module, cfg, card.n_actions)
            self.policy: Any = self.agent
        else:
            from tfcaf.trainer.haml import HALearner, HAPolicy, HAValue, Scheme

            self.policy = HAPolicy(card, cfg).to(device)
            self.critic = HAValue(card, cfg).to(device)
            self.learner = HALearner(self.policy, self.critic, cfg, Scheme(self.spec.sequential, self.spec.trust_region),
                                     seed=cfg.seed)
        self.generator = torch.Generator(device=device).manual_seed(cfg.seed)
        self.sample_generator = torch.Generator().manual_seed(cfg.seed + 1)
        self.env_steps = self.episodes = 0
        self.next_log = self.next_test = self.next_checkpoint = 0
        self.wall_before = 0.0
        self.last_test: dict[str, Any] = {}

    @property
    def algo(self) -> str:
        return self.spec.name

    @property
    def arm(self) -> str:
        return arm_name(self.algo, self.mixer.name if self.mixer else None)

    # -- construction ------------------------------------------------------------------------------
    @classmethod
    def start(cls, task: str, mixer_name: str | None, cfg: TrainConfig, *, device: str = "cpu",
              store: str | Path | None = None, config_source: dict[str, str] | None = None,
              mixer: BuiltMixer | None = None, algo: str = DEFAULT_ALGO) -> "Run":
        root = store_dir(store)
        get_card(task)  # unknown task -> UsageError before any directory is made
        path = root / "train" / task / new_run_id()
        run = cls(path, task, mixer_name, cfg, device, root, mixer=mixer, algo=algo)
        path.mkdir(parents=True)
        write_json_atomic(path / "config.json", {"algo": run.algo, "config": cfg.to_dict(), "source": config_source or {}})
        m = run.mixer
        write_json_atomic(path / "provenance.json", {
            "task": task, "algo": run.algo, "arm": run.arm, "mixer": m.name if m else None,
            "mixer_hashes": m.hashes if m else {}, "mixer_params": m.n_params if m else 0,
            "policy_params": run.n_policy_params, "device": device, "seed": cfg.seed, "versions": versions(),
            "argv": sys.argv, "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())})
        run.next_log, run.next_test, run.next_checkpoint = cfg.log_interval, 0, cfg.checkpoint_interval
        run._status("running")
        run._probe()
        return run

    @property
    def n_policy_params(self) -> int:
        modules = [self.policy] + ([self.critic] if hasattr(self, "critic") else [])
        return sum(p.numel() for mod in modules for p in mod.parameters())

    def _probe(self) -> None:
        """Run the mixer once on a tiny batch before training: a graph that fails here (wrong output shape,
        an allocation it cannot make) marks the run failed in status.json instead of leaving it 'running'."""
        if self.mixer is None:
            return
        card = self.card
        q = torch.zeros(2, 1, card.n_agents, device=self.device)
        s = torch.zeros(2, 1, card.state_dim, device=self.device)
        try:
            with torch.no_grad():
                out = self.mixer.module(q, s)
            if not isinstance(out, torch.Tensor) or tuple(out.shape) != (2, 1, 1):
                raise ValueError(f"expected q_tot of shape (2, 1, 1), got {getattr(out, 'shape', type(out).__name__)}")
        except Exception as err:  # noqa: BLE001 - anything a graph raises is the graph's failure
            message = f"mixer '{self.mixer.name}' failed its probe at load: {type(err).__name__}: {ascii(str(err))[:300]}"
            self._log({"kind": "failed", "env_steps": 0, "message": message})
            self._status("failed", message=message)
            raise RejectedError(message) from None

    @classmethod
    def resume(cls, run: str, *, store: str | Path | None = None, device: str | None = None,
               steps: int | None = None) -> "Run":
        root = store_dir(store)
        path = find_run(run, root)
        from tfcaf.files import read_json  # store files are untrusted: one reader, one error line

        saved = read_json(path / "config.json", "run config")
        prov = read_json(path / "provenance.json", "provenance")
        try:
            cfg = TrainConfig(**saved["config"])
            _ = (prov["task"], prov["device"], get_algo(prov.get("algo", DEFAULT_ALGO)))
            if get_algo(prov.get("algo", DEFAULT_ALGO)).uses_mixer:
                _ = (prov["mixer"], prov["mixer_hashes"])
        except (KeyError, TypeError) as err:
            raise RejectedError(f"run {path}: config.json / provenance.json are not a training run's ({type(err).__name__}); "
                                "start a new run.") from None
        if steps is not None:
            cfg = cfg.replace(steps=steps)
        if not (path / "checkpoint.pt").is_file():
            raise UsageError(f"run {path} has no checkpoint yet; start a new run instead.")
        algo = prov.get("algo", DEFAULT_ALGO)
        self = cls(path, prov["task"], prov.get("mixer"), cfg, device or prov["device"], root,
                   prov["mixer_hashes"] if get_algo(algo).uses_mixer else None, algo=algo)
        state = torch.load(path / "checkpoint.pt", map_location=self.device, weights_only=True)
        self.learner.load_state_dict(state["learner"])
        for key in ("env_steps", "episodes", "next_log", "next_test", "next_checkpoint"):
            setattr(self, key, int(state[key]))
        self.wall_before = float(state["wall_s"])
        self.generator.set_state(state["generator"])
        self.sample_generator.set_state(state["sample_generator"])
        torch.set_rng_state(state["torch_rng"])
        self.last_test = state.get("last_test", {})
        self._log({"kind": "resume", "env_steps": self.env_steps})
        return self

    # -- the loop ----------------------------------------------------------------------------------
    def train(self, progress: Progress | None = None) -> dict[str, Any]:
        """Collect, update, test and checkpoint until cfg.steps env steps; returns the summary."""
        cfg = self.cfg
        writer = None
        if cfg.tensorboard:
            from torch.utils.tensorboard import SummaryWriter

            writer = SummaryWriter(log_dir=str(self.path / "tb"))
        test_env = make_env(self.task, n_envs=cfg.test_episodes, device=self.device, seed=cfg.seed + 1_000_003)
        tester = Collector(test_env, self.tester_policy(), agent_id=cfg.agent_id, last_action=cfg.last_action)
        env = None
        start, start_steps = time.perf_counter(), self.env_steps
        self._status("running")
        try:
            env = make_env(self.task, n_envs=cfg.n_envs, device=self.device, seed=cfg.seed + self.env_steps)
            loop = self._replay_loop if self.spec.path == "replay" else self._rollout_loop
            loop(env, tester, writer, start, start_steps, progress)
            self._test(tester, writer, start, start_steps)
            self._checkpoint(start)
        except (DivergedError, DivergedPG) as err:
            self._log({"kind": "diverged", "env_steps": self.env_steps, "message": str(err)})
            self._status("diverged", message=str(err))
            raise
        except Exception as err:  # noqa: BLE001 - recorded, then re-raised to the caller
            message = f"{type(err).__name__}: {ascii(str(err))[:300]}"
            self._log({"kind": "failed", "env_steps": self.env_steps, "message": message})
            self._status("failed", message=message)
            raise
        finally:
            if env is not None:
                env.close()
            test_env.close()
            if writer is not None:
                writer.close()
        summary = self.summary(start, start_steps)
        self._log({"kind": "done", **summary})
        self._status("done", summary=summary)
        return summary

    def tester_policy(self) -> Any:
        """What greedy tests act with: the Q agent (epsilon 0) or the actors (argmax)."""
        return self.agent if self.spec.path == "replay" else self.policy

    def _after_iteration(self, tester: Collector, writer: Any, start: float, start_steps: int,
                         window: dict[str, list[float]], info: dict[str, Any], progress: Progress | None) -> None:
        """Step-based cadence shared by both paths: log, test (+ checkpoint), checkpoint, progress."""
        cfg = self.cfg
        if self.env_steps >= self.next_log:
            self._log_train(window, info, start, start_steps, writer)
            self.next_log = self.env_steps + cfg.log_interval
        if self.env_steps >= self.next_test:
            self._test(tester, writer, start, start_steps)
            self.next_test = self.env_steps + cfg.test_interval
            self._checkpoint(start)
        elif self.env_steps >= self.next_checkpoint:
            self._checkpoint(start)
        if progress:
            progress(self.env_steps, cfg.steps, {**info, **self.last_test})

    def _replay_loop(self, env: Any, tester: Collector, writer: Any, start: float, start_steps: int,
                     progress: Progress | None) -> None:
        cfg, card = self.cfg, self.card
        buffer = ReplayBuffer(cfg.buffer_size, card.episode_limit, card.n_agents, card.obs_dim, card.state_dim,
                              card.n_actions, self.device)
        collector = Collector(env, self.agent, agent_id=cfg.agent_id, last_action=cfg.last_action,
                              seed=cfg.seed + self.env_steps, generator=self.generator)
        per_iter = cfg.episodes_per_iter or cfg.n_envs
        warmup = max(cfg.warmup_episodes, cfg.batch_size)
        window: dict[str, list[float]] = {"return": [], "won": [], "loss": [], "grad_norm": [], "q_taken_mean": []}
        while self.env_steps < cfg.steps:
            eps = epsilon_at(self.env_steps, cfg.epsilon_start, cfg.epsilon_finish, cfg.epsilon_anneal_steps)
            before = collector.env_steps
            batch = collector.run(per_iter, eps)
            self.env_steps += collector.env_steps - before
            self.episodes += batch.size
            buffer.add(batch)
            window["return"] += batch.episode_return.tolist()
            window["won"] += batch.won.to(torch.float32).tolist()
            if len(buffer) >= warmup:
                for _ in range(cfg.updates_per_iter or batch.size):
                    stats = self.learner.update(buffer.sample(cfg.batch_size, self.sample_generator))
                    window["loss"].append(stats.loss)
                    window["grad_norm"].append(stats.grad_norm)
                    window["q_taken_mean"].append(stats.q_taken_mean)
            self._after_iteration(tester, writer, start, start_steps, window, {"epsilon": round(eps, 4)}, progress)

    def _rollout_loop(self, env: Any, tester: Collector, writer: Any, start: float, start_steps: int,
                      progress: Progress | None) -> None:
        from tfcaf.trainer.onpolicy import RolloutCollector

        cfg = self.cfg
        collector = RolloutCollector(env, self.policy, self.critic, cfg.rollout_length, seed=cfg.seed + self.env_steps,
                                     generator=self.generator)
        window: dict[str, list[float]] = {"return": [], "won": []}
        while self.env_steps < cfg.steps:
            before = collector.env_steps
            rollout = collector.run()
            self.env_steps += collector.env_steps - before
            self.episodes += len(rollout.episode_returns)
            window["return"] += rollout.episode_returns
            window["won"] += rollout.episode_wins
            stats = self.learner.update(rollout)
            for key, value in stats.items():
                if value is not None:
                    window.setdefault(key, []).append(value)
            self._after_iteration(tester, writer, start, start_steps, window, {}, progress)

    def summary(self, start: float, start_steps: int) -> dict[str, Any]:
        wall = time.perf_counter() - start
        return {"run_dir": str(self.path), "task": self.task, "algo": self.algo, "arm": self.arm,
                "mixer": self.mixer.name if self.mixer else None, "seed": self.cfg.seed,
                "env_steps": self.env_steps, "episodes": self.episodes, "updates": self.learner.updates,
                "wall_s": round(wall, 3), "wall_s_total": round(self.wall_before + wall, 3),
                "env_steps_per_s": round((self.env_steps - start_steps) / max(wall, 1e-9), 1),
                "test_return_mean": self.last_test.get("test_return_mean"),
                "test_win_rate": self.last_test.get("test_win_rate"),
                "mixer_params": self.mixer.n_params if self.mixer else 0, "policy_params": self.n_policy_params}

    # -- pieces ------------------------------------------------------------------------------------
    def _test(self, tester: Collector, writer: Any, start: float, start_steps: int) -> None:
        tester.reset(seed=self.cfg.seed + 7919 * (1 + self.env_steps))
        batch = tester.run(self.cfg.test_episodes, 0.0, first_only=True)
        ret = float(batch.episode_return.mean())
        record = {"kind": "test", "env_steps": self.env_steps, "test_return_mean": ret,
                  "test_return_std": float(batch.episode_return.std(unbiased=False)),
                  "test_episode_length": float(batch.length.to(torch.float32).mean()),
                  "test_win_rate": float(batch.won.to(torch.float32).mean()) if self.card.family == "smax" else None,
                  "wall_s": round(self.wall_before + time.perf_counter() - start, 3)}
        self.last_test = {k: record[k] for k in ("test_return_mean", "test_win_rate")}
        self._log(record)
        if writer is not None:
            writer.add_scalar("test/return_mean", ret, self.env_steps)
            if record["test_win_rate"] is not None:
                writer.add_scalar("test/win_rate", record["test_win_rate"], self.env_steps)

    def _log_train(self, window: dict[str, list[float]], info: dict[str, Any], start: float, start_steps: int,
                   writer: Any) -> None:
        mean = lambda xs: sum(xs) / len(xs) if xs else None  # noqa: E731
        wall = time.perf_counter() - start
        record: dict[str, Any] = {"kind": "train", "env_steps": self.env_steps, "episodes": self.episodes,
                                  "updates": self.learner.updates, **info, "return_mean": mean(window["return"]),
                                  "win_rate": mean(window["won"]) if self.card.family == "smax" else None}
        for key, xs in window.items():
            if key not in ("return", "won"):
                record[key] = mean(xs)
        record["env_steps_per_s"] = round((self.env_steps - start_steps) / max(wall, 1e-9), 1)
        self._log(record)
        if writer is not None:
            for key, value in record.items():
                if key not in ("kind", "env_steps", "episodes", "updates") and isinstance(value, (int, float)):
                    writer.add_scalar(f"train/{key}", value, self.env_steps)
        for xs in window.values():
            xs.clear()

    def _checkpoint(self, start: float) -> None:
        state = {"learner": self.learner.state_dict(), "env_steps": self.env_steps, "episodes": self.episodes,
                 "next_log": self.next_log, "next_test": self.next_test,
                 "next_checkpoint": self.env_steps + self.cfg.checkpoint_interval,
                 "wall_s": self.wall_before + time.perf_counter() - start, "generator": self.generator.get_state(),
                 "sample_generator": self.sample_generator.get_state(), "torch_rng": torch.get_rng_state(),
                 "last_test": self.last_test}
        tmp = self.path / "checkpoint.pt.tmp"
        torch.save(state, tmp)
        os.replace(tmp, self.path / "checkpoint.pt")
        self.next_checkpoint = self.env_steps + self.cfg.checkpoint_interval

    def _log(self, record: dict[str, Any]) -> None:
        with open(self.path / "metrics.jsonl", "a", encoding="utf-8") as fh:
            fh.write(dumps(record, default=str) + "\n")

    def _status(self, status: str, **extra: Any) -> None:
        write_json_atomic(self.path / "status.json", {"status": status, "env_steps": self.env_steps, **extra})
