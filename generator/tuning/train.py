"""The three training loops of `tfcaf tune` and the generator folder they write.

    config = TuneConfig(method="tbrm", base="tiny", name="t1", tasks=("matrix_climbing",), online=True, steps=20)
    summary = tune(config, reward_fn=toy_even_tokens)
    summary["out_dir"], summary["eval_before"], summary["eval_after"]

`<store>/generators/NAME/` holds `adapter/` (peft LoRA adapter; `model/` for full fine-tuning),
`manifest.json` (base model hash, data hash, method, config, seed, versions), `adapter.gguf` (the same
adapter for llama.cpp, when the base came from a GGUF; its sha256 in the manifest), `metrics.jsonl`, `tb/`
(TensorBoard), `samples.jsonl` (every online sample, in the `tfcaf dataset` row schema, so it is
data for the next run; also written as a run per task under `<store>/runs/`, see `runlog.py`) and, for
TBRM, `ref_logprobs.jsonl` (the reference log-probs, precomputed once).
"""

from __future__ import annotations

import dataclasses
import datetime
import json
import math
import random
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from tfcaf.errors import UsageError
from tfcaf.generator.tuning.data import Row, file_sha256, read_rows, rows_sha256, top_rows
from tfcaf.generator.tuning.rewards import RewardFn, Scored

METHODS = ("rft", "tbrm", "cory", "sac-glam")
MANIFEST_KIND = "tfcaf-generator"


@dataclass(frozen=True)
class TuneConfig:
    """Everything `tfcaf tune` needs (one docstring per field: `tfcaf tune --help` reads them)."""

    method: str = "rft"
    """rft (SFT on the top-rewarded rows), tbrm (trajectory Bellman residual), cory (pioneer + observer) or sac-glam (a refinement agent: soft actor-critic over the refinement operators, on the refinement MDP)."""
    base: str = "smollm2"
    """Base model: smollm2 (the shipped GGUF, dequantised), tiny[:SEED] (random, tests), a .gguf file or a model directory."""
    name: str = ""
    """Name of the tuned generator: written to <store>/generators/NAME/."""
    data: str | None = None
    """A `tfcaf dataset` JSONL file to learn from (offline)."""
    online: bool = False
    """Sample from the current model, vet, reward and learn as it goes (appends every sample to samples.jsonl)."""
    tasks: tuple[str, ...] = ()
    """Tasks for online sampling and evaluation (default: the tasks in --data)."""
    steps: int = 20
    """Optimizer updates."""
    store: str | None = None
    """Store directory (default $TFCAF_STORE or ./.tfcaf)."""
    seed: int = 0
    """Seed of sampling, data order and initialisation."""
    mode: str = "code"
    """code (free-form QLLMNetwork, the target) or spec (a JSON credit spec)."""
    lora: bool = True
    """LoRA adapters through peft (default); --full fine-tunes every weight (small models only)."""
    lora_rank: int = 8
    """LoRA rank."""
    lr: float = 1e-4
    """AdamW learning rate."""
    batch: int = 2
    """Rows per update (rft, tbrm)."""
    samples_per_step: int = 2
    """Online samples per update (rft: the group the best is kept from; tbrm tops up one per prompt; cory: pioneer answers, each with one observer answer)."""
    max_new_tokens: int = 256
    """Tokens per sampled answer."""
    stop_at_fence: bool = True
    """code mode: end a sampled answer once it closes its fenced python block (the vetter reads exactly one block)."""
    temperature: float = 1.0
    """Sampling temperature of online samples."""
    rft_top: float = 0.25
    """rft: keep rows in the top fraction of reward per task."""
    beta: float = 0.01
    """tbrm: the KL temperature beta (Q = beta * logits). Keep beta * ln(vocab) below the reward range: at 0.1 the first-position value (~0.1 * 10.8 for a 49k vocabulary at init) exceeds every reward in [0, 1] and the loss first flattens the policy."""
    length_norm: bool = False
    """tbrm: divide the summed log-ratio by the answer's length."""
    kl_coef: float = 0.05
    """cory: weight of the sequence KL to the frozen reference in the shaped reward."""
    swap_every: int = 5
    """cory: exchange the pioneer's and the observer's weights every T updates."""
    eval_samples: int = 0
    """Samples per task to evaluate before and after training (0 = skip)."""
    device: str = "cpu"
    """torch device: cpu, cuda, cuda:1."""
    threads: int = 1
    """CPU threads for torch and vetting."""
    force: bool = False
    """Replace an existing generator with the same name."""
    her: bool = True
    """sac-glam: hindsight relabelling (a missed episode is stored again under goals it achieved); --no-her turns it off."""
    horizon: int = 3
    """sac-glam: steps per refinement episode."""
    goals: tuple[str, ...] = ()
    """sac-glam: goals episodes draw from, each task keeping those among its refine_goals (default: all of them)."""
    warmup: int = 10
    """sac-glam: critic-only updates before the actor and alpha learn."""
    top_layers: int = 2
    """sac-glam: decoder layers (from the top) carrying the LoRA adapter; the others are frozen and their prompt encodings cached."""
    alpha_lr: float = 3e-3
    """sac-glam: Adam learning rate of log alpha (the temperature)."""
    glam_norm: str = "mean"
    """sac-glam: an operator's logit is the mean (default) or the sum (the paper's) of its tokens' log-probs."""

    def check(self) -> "TuneConfig":
        if self.method not in METHODS:
            raise UsageError(f"--method must be one of {', '.join(METHODS)}, got '{self.method}'.")
        if not self.name or not all(c.isalnum() or c in "-_." for c in self.name) or self.name.startswith("."):
            raise UsageError("--name must be non-empty letters, digits, '-', '_' or '.' (not starting with '.').")
        if self.mode not in ("code", "spec"):
            raise UsageError(f"--mode must be code or spec, got '{self.mode}'.")
        if self.method == "sac-glam":
            if not self.tasks:
                raise UsageError("--method sac-glam trains on the refinement MDP of --tasks T... (e.g. --tasks smac_8m).")
            if self.data or self.online or not self.lora:
                raise UsageError("--method sac-glam collects its own episodes with a LoRA adapter: drop --data, --online and --full.")
            if self.eval_samples:
                raise UsageError("--eval-samples is for the generator methods; evaluate a refiner with benchmarks/bench_refine.py.")
            if self.glam_norm not in ("sum", "mean"):
                raise UsageError(f"--glam-norm must be sum or mean, got '{self.glam_norm}'.")
            for name, lo, hi in (("horizon", 1, 64), ("warmup", 0, 100000), ("top_layers", 1, 1000)):
                v = getattr(self, name)
                if not lo <= v <= hi:
                    raise UsageError(f"--{name.replace('_', '-')} must be between {lo} and {hi}, got {v}.")
        elif not self.data and not self.online:
            raise UsageError("nothing to learn from: pass --data FILE.jsonl (a `tfcaf dataset`) and/or --online.")
        if self.method == "cory" and not self.online:
            raise UsageError("--method cory learns from its own pioneer/observer samples: add --online.")
        if self.online and not self.tasks and not self.data:
            raise UsageError("--online needs --tasks T... (or --data to take the tasks from).")
        for name, lo, hi in (("steps", 1, 100000), ("batch", 1, 256), ("samples_per_step", 1, 64),
                             ("max_new_tokens", 1, 8192), ("swap_every", 1, 100000), ("lora_rank", 1, 512),
                             ("eval_samples", 0, 1000), ("threads", 1, 256)):
            v = getattr(self, name)
            if not lo <= v <= hi:
                raise UsageError(f"--{name.replace('_', '-')} must be between {lo} and {hi}, got {v}.")
        for name in ("lr", "beta", "kl_coef", "temperature", "rft_top", "alpha_lr"):
            v = getattr(self, name)
            if not math.isfinite(v) or v < 0 or (name in ("lr", "beta", "rft_top", "alpha_lr") and v == 0):
                raise UsageError(f"--{name.replace('_', '-')} must be a finite positive number, got {v}.")
        if self.method == "cory" and self.samples_per_step != 2:
            pass  # cory always draws one pioneer and one observer answer per update
        return self

    def to_json(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["tasks"] = list(self.tasks)
        d["goals"] = list(self.goals)
        return d


def generators_dir(store: Path) -> Path:
    return Path(store) / "generators"


# -- metrics ---------------------------------------------------------------------------------------
class Metrics:
    """metrics.jsonl (append, flushed per line) + TensorBoard scalars."""

    def __init__(self, folder: Path) -> None:
        self.path = folder / "metrics.jsonl"
        self._fh = open(self.path, "a", encoding="utf-8")
        try:
            from torch.utils.tensorboard import SummaryWriter

            self._tb = SummaryWriter(str(folder / "tb"))
        except ImportError:  # tensorboard is a core dependency; keep going without it if it is broken
            self._tb = None

    def log(self, step: int, **values: Any) -> None:
        self._fh.write(json.dumps({"step": step, **values}, default=float) + "\n")
        self._fh.flush()
        if self._tb is not None:
            for k, v in values.items():
                if isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v):
                    self._tb.add_scalar(k, v, step)

    def close(self) -> None:
        self._fh.close()
        if self._tb is not None:
            self._tb.close()


# -- shared pieces ---------------------------------------------------------------------------------
def _task_messages(task: str, mode: str) -> list[dict[str, str]]:
    from tfcaf.generator import prompting
    from tfcaf.tasks.registry import get_card

    return prompting.generate_messages(get_card(task), mode)


def observer_messages(task_messages: list[dict[str, str]], pioneer_answer: str, scored: Scored | None,
                      mode: str) -> list[dict[str, str]]:
    """CORY's observer prompt: the task, the pioneer's answer (LLM text, passed in as a variable) and its verdict."""
    from tfcaf.generator.prompting import render

    info = scored.info if scored else {}
    verdict = "no verdict" if scored is None else (
        f"{'accepted' if scored.passed else 'rejected'} ({info.get('status') or 'unknown'}), reward {scored.reward:.2f}")
    body = render("cory_observer.j2", task_prompt=task_messages[-1]["content"], pioneer_answer=pioneer_answer.strip(),
                  verdict=verdict, reasons=[str(r)[:300] for r in info.get("reasons") or []][:3], mode=mode)
    return [*task_messages[:-1], {"role": "user", "content": body}]


class SampleLog:
    """samples.jsonl: every online sample as a `tfcaf dataset` row (source 'tune'); with `runs`, also a run
    per task in the store's run log (`runlog.TuneRunLog`), so `tfcaf dataset build` makes them rows."""

    def __init__(self, path: Path, name: str, base_identity: dict[str, Any], mode: str, runs: Any = None) -> None:
        self.path, self.name, self.base, self.mode = path, name, base_identity, mode
        self.rows: list[Row] = []
        self.runs = runs

    def add(self, task: str, messages: list[dict[str, str]], text: str, scored: Scored, step: int, role: str,
            sampling: dict[str, Any], tokens: tuple[int, int] = (0, 0), latency_s: float = 0.0) -> Row:
        rid = f"tune-{self.name}-{step}-{role}-{len(self.rows)}"
        extra = {"source": "tune", "generator": {"backend": "tune", "model": self.name, "model_sha256": None,
                                                 "base_sha256": self.base.get("sha256"), "role": role, "sampling": sampling},
                 "verdict": {"status": scored.info.get("status"), "stage": scored.info.get("stage")},
                 "reward_vector": scored.info.get("vector"), "goal": None, "achieved": None,
                 "relabeled_from": None, "logprobs": None}
        row = Row(rid, task, tuple((m["role"], m["content"]) for m in messages), text, float(scored.reward),
                  self.mode, False, extra)
        with open(self.path, "a", encoding="utf-8") as fh:
            fh.write(json.dumps(row.to_json()) + "\n")
        self.rows.append(row)
        if self.runs is not None:
            render = {"fn": "generate", "args": {"mode": self.mode}} if role != "observer" else None
            self.runs.add(task, messages, text, scored, step, role, sampling, tokens=tokens, latency_s=latency_s,
                          render=render)
        return row


def evaluate(policy: Any, tasks: list[str], n: int, reward_fn: RewardFn, mode: str, max_new_tokens: int,
             temperature: float, seed: int, stop_at_fence: bool = False) -> dict[str, Any]:
    """n samples per task from the policy (in the pioneer role for CORY): pass rate and mean reward."""
    per: dict[str, Any] = {}
    t0 = time.perf_counter()
    count = 0
    for task in tasks:
        prompt = policy.prompt_ids(_task_messages(task, mode))
        rewards, passed = [], 0
        seqs: list[list[int]] = []
        for start in range(0, n, 16):  # batches of 16 samples
            seqs += policy.sample(prompt, min(16, n - start), max_new_tokens, temperature, seed=seed + 7919 * start,
                                  stop_at_fence=stop_at_fence and mode == "code")
        for ids in seqs:
            scored = reward_fn(task, policy.decode(ids), ids)
            count += 1
            if scored is None:
                continue
            rewards.append(scored.reward)
            passed += scored.passed
        per[task] = {"n": len(rewards), "mean_reward": sum(rewards) / max(1, len(rewards)),
                     "pass_rate": passed / max(1, len(rewards))}
    total = sum(v["n"] for v in per.values())
    return {"tasks": per, "n": total,
            "mean_reward": sum(v["mean_reward"] * v["n"] for v in per.values()) / max(1, total),
            "pass_rate": sum(v["pass_rate"] * v["n"] for v in per.values()) / max(1, total),
            "wall_s_per_sample": (time.perf_counter() - t0) / max(1, count)}


# -- the methods -----------------------------------------------------------------------------------
class Trainer:
    """State shared by the three methods: the policy, its optimizer(s), the pool of rows, the logs."""

    def __init__(self, config: TuneConfig, policy: Any, reward_fn: RewardFn | None, rows: list[Row], out: Path,
                 metrics: Metrics, samples: SampleLog, progress: Callable[..., None]) -> None:
        import torch

        self.config, self.policy, self.reward_fn, self.rows, self.out = config, policy, reward_fn, list(rows), out
        self.metrics, self.samples, self.progress = metrics, samples, progress
        self.rng = random.Random(config.seed)
        self.tasks = list(config.tasks) or sorted({r.task for r in rows})
        self.opt = torch.optim.AdamW(policy.trainable(), lr=config.lr, weight_decay=0.0)
        self.update_s: list[float] = []
        self.sample_s: list[float] = []
        self._pairs: dict[str, Any] = {}

    def pair(self, row: Row) -> tuple[list[int], list[int]]:
        if row.id not in self._pairs:
            self._pairs[row.id] = (self.policy.prompt_ids(row.chat), self.policy.response_ids(row.response))
        return self._pairs[row.id]

    def draw(self, task: str, messages: list[dict[str, str]], n: int, step: int, role: str) -> list[tuple[Row, Scored, list[int]]]:
        """n online samples for `messages`, rewarded and logged (infrastructure failures dropped)."""
        c = self.config
        assert self.reward_fn is not None
        prompt = self.policy.prompt_ids(messages)
        out = []
        t0 = time.perf_counter()
        seqs = self.policy.sample(prompt, n, c.max_new_tokens, c.temperature, seed=c.seed * 100003 + step * 101 + len(role),
                                  stop_at_fence=c.stop_at_fence and c.mode == "code")
        self.sample_s.append((time.perf_counter() - t0) / max(1, n))
        for ids in seqs:
            text = self.policy.decode(ids)
            scored = self.reward_fn(task, text, ids)
            if scored is None:
                continue
            row = self.samples.add(task, messages, text, scored, step, role,
                                   {"temperature": c.temperature, "max_tokens": c.max_new_tokens},
                                   tokens=(len(prompt), len(ids)), latency_s=self.sample_s[-1])
            self._pairs[row.id] = (prompt, ids if ids and ids[-1] == self.policy.eos_id else ids)
            out.append((row, scored, ids))
        return out

    def _step(self, loss: Any) -> None:
        import torch

        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(self.policy.trainable(), 1.0)
        self.opt.step()

    # RFT -----------------------------------------------------------------------------------------
    def run_rft(self) -> None:
        from tfcaf.generator.tuning.losses import sft_loss

        c = self.config
        chosen = top_rows(self.rows, c.rft_top) if self.rows else []
        if self.rows and not chosen and not c.online:
            raise UsageError("rft: no row has a positive reward in --data; nothing to imitate.")
        for step in range(c.steps):
            t0 = time.perf_counter()
            info: dict[str, Any] = {}
            batch = [chosen[self.rng.randrange(len(chosen))] for _ in range(c.batch)] if chosen else []
            if c.online:
                task = self.tasks[step % len(self.tasks)]
                drawn = self.draw(task, _task_messages(task, c.mode), c.samples_per_step, step, "rft")
                if drawn:
                    best = max(s.reward for _, s, _ in drawn)
                    mean = sum(s.reward for _, s, _ in drawn) / len(drawn)
                    info.update(sample_reward=mean, sample_best=best)
                    winners = [r for r, s, _ in drawn if s.reward == best and best > 0]
                    chosen.extend(winners)  # the accepted answers join the imitation set
                    batch = winners + batch[: max(0, c.batch - len(winners))]
            if not batch:
                self.metrics.log(step, skipped=1, **info)
                self.progress(step)
                continue
            lp, mask, _ = self.policy.score([self.pair(r) for r in batch])
            loss = sft_loss(lp, mask)
            self._step(loss)
            self.update_s.append(time.perf_counter() - t0)
            self.metrics.log(step, loss=float(loss.detach()), batch=len(batch), update_s=self.update_s[-1], **info)
            self.progress(step, loss=float(loss.detach()))

    # TBRM ----------------------------------------------------------------------------------------
    def ref_table(self) -> dict[str, list[float]]:
        """Reference log-probs of every pool row, computed once and stored in ref_logprobs.jsonl."""
        path = self.out / "ref_logprobs.jsonl"
        table: dict[str, list[float]] = {}
        with open(path, "a", encoding="utf-8") as fh:
            for row in self.rows:
                table[row.id] = self._ref(row)
                fh.write(json.dumps({"id": row.id, "ref_logprobs": table[row.id]}) + "\n")
        self._ref_fh = path
        return table

    def _ref(self, row: Row) -> list[float]:
        return [float(x) for x in self.policy.ref_logprobs([self.pair(row)])[0].tolist()[: len(self.pair(row)[1])]]

    def run_tbrm(self) -> None:
        import torch

        from tfcaf.generator.tuning.losses import tbrm_residual

        c = self.config
        table = self.ref_table()
        for step in range(c.steps):
            t0 = time.perf_counter()
            info: dict[str, Any] = {}
            fresh: list[Row] = []
            if c.online:  # top-up: one sample per prompt from the current model
                task = self.tasks[step % len(self.tasks)]
                drawn = self.draw(task, _task_messages(task, c.mode), 1, step, "tbrm")
                for row, s, _ in drawn:
                    table[row.id] = self._ref(row)
                    with open(self.out / "ref_logprobs.jsonl", "a", encoding="utf-8") as fh:
                        fh.write(json.dumps({"id": row.id, "ref_logprobs": table[row.id]}) + "\n")
                    self.rows.append(row)
                    fresh.append(row)
                if drawn:
                    info["sample_reward"] = sum(s.reward for _, s, _ in drawn) / len(drawn)
            if not self.rows:
                self.metrics.log(step, skipped=1, **info)
                self.progress(step)
                continue
            others = [self.rows[self.rng.randrange(len(self.rows))] for _ in range(max(0, c.batch - len(fresh)))]
            batch = fresh + others
            pairs = [self.pair(r) for r in batch]
            lp, mask, first = self.policy.score(pairs)
            ref = torch.zeros_like(lp)
            for b, r in enumerate(batch):
                ref[b, : len(table[r.id])] = torch.tensor(table[r.id])
            reward = torch.tensor([r.reward for r in batch], device=lp.device)
            res = tbrm_residual(first, lp, ref.to(lp.device), mask, reward, c.beta, c.length_norm)
            loss = (res ** 2).mean()
            self._step(loss)
            self.update_s.append(time.perf_counter() - t0)
            self.metrics.log(step, loss=float(loss.detach()), residual_abs=float(res.detach().abs().mean()), batch=len(batch),
                             update_s=self.update_s[-1], **info)
            self.progress(step, loss=float(loss.detach()))


class CoryTrainer(Trainer):
    """CORY: a pioneer and an observer LoRA adapter on one base; the base (adapters off) is the reference."""

    PIONEER, OBSERVER = "pioneer", "observer"

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        import torch

        super().__init__(*args, **kwargs)
        model = self.policy.model
        if not self.policy.lora:
            raise UsageError("--method cory trains two LoRA adapters on one base: drop --full.")
        self.opts = {}
        for role in (self.PIONEER, self.OBSERVER):
            model.set_adapter(role)
            self.opts[role] = torch.optim.AdamW([p for n, p in model.named_parameters() if f".{role}." in n],
                                                lr=self.config.lr, weight_decay=0.0)
        model.set_adapter(self.PIONEER)
        self.baseline = {self.PIONEER: None, self.OBSERVER: None}
        self.swaps = 0

    def swap(self) -> None:
        """Exchange the pioneer's and the observer's weights (and their optimizer moments)."""
        import torch

        params = dict(self.policy.model.named_parameters())
        for name, p in params.items():
            if f".{self.PIONEER}." in name:
                o = params[name.replace(f".{self.PIONEER}.", f".{self.OBSERVER}.")]
                with torch.no_grad():
                    tmp = p.detach().clone()
                    p.copy_(o)
                    o.copy_(tmp)
                sp, so = self.opts[self.PIONEER].state, self.opts[self.OBSERVER].state
                a, b = sp.pop(p, None), so.pop(o, None)
                if b is not None:
                    sp[p] = b
                if a is not None:
                    so[o] = a
        self.swaps += 1

    def _update(self, role: str, rows: list[Row], collective: list[float]) -> dict[str, float]:
        """One KL-regularised REINFORCE step of `role` on its answers, each rewarded with the collective reward.
        The baseline is the batch mean when there are several answers, else a running mean."""
        import torch

        from tfcaf.generator.tuning.losses import kl_pg_loss

        model = self.policy.model
        model.set_adapter(role)
        pairs = [self.pair(r) for r in rows]
        ref = self.policy.ref_logprobs(pairs)  # [B, T]
        lp, mask, _ = self.policy.score(pairs)
        base = self.baseline[role]
        reward = torch.tensor(collective, device=lp.device)
        loss, info = kl_pg_loss(lp, ref, mask, reward, self.config.kl_coef,
                                baseline=None if len(rows) > 1 else (0.0 if base is None else base))
        shaped = info["shaped_reward"]
        self.baseline[role] = shaped if base is None else 0.9 * base + 0.1 * shaped
        opt = self.opts[role]
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_([p for p in opt.param_groups[0]["params"]], 1.0)
        opt.step()
        return {f"{role}_loss": float(loss.detach()), f"{role}_kl": info["kl"]}

    def run_cory(self) -> None:
        c = self.config
        model = self.policy.model
        for step in range(c.steps):
            t0 = time.perf_counter()
            task = self.tasks[step % len(self.tasks)]
            messages = _task_messages(task, c.mode)
            model.set_adapter(self.PIONEER)
            pio = self.draw(task, messages, c.samples_per_step, step, self.PIONEER)
            pairs = []
            model.set_adapter(self.OBSERVER)
            for prow, pscore, _ in pio:  # one observer answer per pioneer answer
                obs = self.draw(task, observer_messages(messages, prow.response, pscore, c.mode), 1, step, self.OBSERVER)
                if obs:
                    pairs.append((prow, pscore, obs[0][0], obs[0][1]))
            if not pairs:
                model.set_adapter(self.PIONEER)
                self.metrics.log(step, skipped=1)
                self.progress(step)
                continue
            collective = [p[1].reward + p[3].reward for p in pairs]  # CORY: both get r_pioneer + r_observer
            info = self._update(self.PIONEER, [p[0] for p in pairs], collective)
            info.update(self._update(self.OBSERVER, [p[2] for p in pairs], collective))
            if (step + 1) % c.swap_every == 0:
                self.swap()
            model.set_adapter(self.PIONEER)
            self.update_s.append(time.perf_counter() - t0)
            n = len(pairs)
            self.metrics.log(step, r_pioneer=sum(p[1].reward for p in pairs) / n, r_observer=sum(p[3].reward for p in pairs) / n,
                             collective=sum(collective) / n, swaps=self.swaps, update_s=self.update_s[-1], **info)
            self.progress(step, loss=info[f"{self.PIONEER}_loss"])


# -- the run ---------------------------------------------------------------------------------------
def _versions() -> dict[str, Any]:
    from importlib.metadata import PackageNotFoundError, version

    from tfcaf.provenance import versions

    out = dict(versions())
    for pkg in ("peft", "gguf", "transformers"):
        try:
            out[pkg] = version(pkg)
        except PackageNotFoundError:
            out[pkg] = None
    return out


def _write_json(path: Path, data: Any) -> None:
    from tfcaf.store import write_atomic

    write_atomic(path, json.dumps(data, indent=1, sort_keys=True, default=str) + "\n")


def write_manifest(folder: Path, manifest: dict[str, Any]) -> None:
    """Replace a generator folder's manifest.json atomically."""
    _write_json(Path(folder) / "manifest.json", manifest)


def tune(config: TuneConfig, reward_fn: RewardFn | None = None, base: Any = None,
         progress: Callable[..., None] | None = None) -> dict[str, Any]:
    """Train a generator by `config.method`; writes <store>/generators/NAME/ and returns the summary.

    `reward_fn` defaults to the real vetter + tiered reward when sampling online; `base` may be a
    preloaded `model.Base` (tests, benchmarks)."""
    import shutil

    import torch

    from tfcaf.generator.tuning.model import load_base
    from tfcaf.generator.tuning.policy import Policy
    from tfcaf.runtime import configure_torch
    from tfcaf.store import store_dir
    from tfcaf.tasks.registry import get_card

    config.check()
    for t in config.tasks:
        get_card(t)
    rows = read_rows(Path(config.data)) if config.data else []
    rows = [r for r in rows if r.mode == config.mode]
    if config.data and not rows:
        raise UsageError(f"--data {config.data}: no rows in mode {config.mode}.")
    out = generators_dir(store_dir(config.store)) / config.name
    if out.exists():
        if not config.force:
            raise UsageError(f"generator '{config.name}' exists ({out}); pick another --name or pass --force.")
        shutil.rmtree(out)
    out.mkdir(parents=True)
    configure_torch(config.threads)
    torch.manual_seed(config.seed)
    random.seed(config.seed)
    if base is None:
        base = load_base(config.base, config.device)
    if config.method == "sac-glam":
        from tfcaf.generator.tuning.sacglam import run_sacglam

        return run_sacglam(config, base, out, progress)
    policy = Policy.build(base, lora=config.lora, rank=config.lora_rank,
                          adapter=CoryTrainer.PIONEER if config.method == "cory" else "default")
    if config.method == "cory":
        from peft import LoraConfig

        from tfcaf.generator.tuning.model import LORA_TARGETS

        policy.model.add_adapter(CoryTrainer.OBSERVER, LoraConfig(r=config.lora_rank, lora_alpha=2 * config.lora_rank,
                                                                  target_modules=list(LORA_TARGETS), task_type="CAUSAL_LM"))
    started = datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")
    manifest: dict[str, Any] = {
        "kind": MANIFEST_KIND, "name": config.name, "method": config.method, "mode": config.mode,
        "base": base.identity, "adapter": "lora" if config.lora else "full", "config": config.to_json(),
        "seed": config.seed, "versions": _versions(), "started_at": started, "status": "running",
        "data": {"path": Path(config.data).name if config.data else None,
                 "sha256": file_sha256(Path(config.data)) if config.data else None, "rows": len(rows)},
    }
    _write_json(out / "manifest.json", manifest)
    metrics = Metrics(out)
    runs = None
    if config.online:
        from tfcaf.generator.tuning.runlog import TuneRunLog

        runs = TuneRunLog(store_dir(config.store), config.name, config.to_json(), base.identity, config.mode)
    samples = SampleLog(out / "samples.jsonl", config.name, base.identity, config.mode, runs)
    cls = CoryTrainer if config.method == "cory" else Trainer
    own_reward = None
    if config.online and reward_fn is None or (config.eval_samples and reward_fn is None):
        from tfcaf.generator.tuning.rewards import vetted_reward

        own_reward = vetted_reward(config.mode, config.threads)
        reward_fn = own_reward.__enter__()
    try:
        trainer = cls(config, policy, reward_fn, rows, out, metrics, samples, progress or (lambda *a, **k: None))
        eval_tasks = trainer.tasks
        before = after = None
        if config.eval_samples:
            before = evaluate(policy, eval_tasks, config.eval_samples, reward_fn, config.mode, config.max_new_tokens,
                              config.temperature, seed=config.seed + 1,
                              stop_at_fence=config.stop_at_fence)
        policy.model.train()
        t0 = time.perf_counter()
        getattr(trainer, f"run_{config.method}")()
        train_s = time.perf_counter() - t0
        policy.model.eval()
        if config.method == "cory":
            policy.model.set_adapter(CoryTrainer.PIONEER)  # evaluated and served in the pioneer role
        if config.eval_samples:
            after = evaluate(policy, eval_tasks, config.eval_samples, reward_fn, config.mode, config.max_new_tokens,
                             config.temperature, seed=config.seed + 1,
                              stop_at_fence=config.stop_at_fence)
        save_policy(policy, out, config.method)
        served = export_for_llamacpp(policy, base.identity, out)
    except BaseException:
        manifest["status"] = "failed"
        _write_json(out / "manifest.json", manifest)
        raise
    finally:
        metrics.close()
        if runs is not None:
            run_dirs = runs.close(manifest["status"] if manifest["status"] != "running" else "finished")
        if own_reward is not None:
            own_reward.__exit__(None, None, None)
    sample_rewards = [r.reward for r in samples.rows]
    manifest.update(status="finished", finished_at=datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
                    online_samples=len(samples.rows), online_runs=[Path(p).name for p in run_dirs] if runs else [],
                    online_data_sha256=rows_sha256(samples.rows) if samples.rows else None,
                    train_s=round(train_s, 3),
                    update_s_mean=round(sum(trainer.update_s) / max(1, len(trainer.update_s)), 4),
                    sample_s_mean=round(sum(trainer.sample_s) / max(1, len(trainer.sample_s)), 4) if trainer.sample_s else None,
                    eval_before=before, eval_after=after,
                    swaps=getattr(trainer, "swaps", None), **served)
    _write_json(out / "manifest.json", manifest)
    return {"name": config.name, "out_dir": str(out), "method": config.method, "steps": config.steps,
            "online_samples": len(samples.rows), "online_runs": manifest["online_runs"],
            "online_mean_reward": sum(sample_rewards) / len(sample_rewards) if sample_rewards else None,
            "eval_before": before, "eval_after": after, "train_s": round(train_s, 3),
            "update_s_mean": manifest["update_s_mean"], "sample_s_mean": manifest["sample_s_mean"]}


def export_for_llamacpp(policy: Any, identity: dict[str, Any], out: Path) -> dict[str, Any]:
    """Manifest entries of the served adapter: its safetensors sha256 and, when the base came from a GGUF,
    `gguf_adapter` (adapter.gguf for llama.cpp, see `export.export_lora_gguf`)."""
    from tfcaf.generator.tuning.export import ADAPTER_GGUF, base_gguf_path, export_lora_gguf
    from tfcaf.generator.tuning.model import sha256_file

    if not policy.lora:
        return {}
    weights = out / "adapter" / "adapter_model.safetensors"
    entries: dict[str, Any] = {"adapter_sha256": sha256_file(weights) if weights.is_file() else None}
    base = base_gguf_path(identity)
    if base is not None and weights.is_file():
        record = export_lora_gguf(out / "adapter", base, out / ADAPTER_GGUF)
        record["adapter_sha256"] = entries["adapter_sha256"]
        entries["gguf_adapter"] = record
    return entries


def save_policy(policy: Any, out: Path, method: str) -> None:
    """adapter/ (the LoRA adapter served: the pioneer's for CORY; observer/ beside it) or model/ (full)."""
    if not policy.lora:
        policy.model.save_pretrained(str(out / "model"))
        policy.tokenizer.save_pretrained(str(out / "model"))
        return
    if method == "cory":
        tmp = out / ".adapters"
        policy.model.save_pretrained(str(tmp))
        # peft writes an adapter named 'default' at the top and every other one in a sub-folder of its name
        for role, dest in ((CoryTrainer.PIONEER, "adapter"), (CoryTrainer.OBSERVER, "observer")):
            (tmp / role).rename(out / dest)
        import shutil

        shutil.rmtree(tmp)
        return
    policy.model.save_pretrained(str(out / "adapter"))
