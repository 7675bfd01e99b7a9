"""Vetting in the trusted process: text gate and AST gate here, everything that runs candidate code in
a fresh worker process (see worker.py), then a second check of the returned graph.

    >>> from tfcaf.tasks.registry import get_card                                  # doctest: +SKIP
    >>> with Vetter() as vetter:                                                   # doctest: +SKIP
    ...     v = vetter.vet("def QLLMNetwork(agents_q, global_state):\\n    return agents_q.sum(-1, keepdim=True)\\n",
    ...                    get_card("matrix_climbing"))
    >>> v.verdict, v.status                                                        # doctest: +SKIP
    ('accepted', 'ok')
"""

from __future__ import annotations

import importlib
import importlib.util
import json
import os
import select
import signal
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import asdict, dataclass, field
from typing import Any

from tfcaf.errors import RejectedError
from tfcaf.sandbox.astgate import check_module
from tfcaf.sandbox.textgate import extract_source
from tfcaf.verdict import Rejection, Verdict, infrastructure, rejected
from tfcaf.tasks.card import TaskCard

MAX_RESULT_BYTES = 32 * 1024 * 1024
_ENV_KEEP = ("PATH", "LANG", "LC_ALL", "PYTHONPATH", "VIRTUAL_ENV", "CI")


def _env_int(name: str, default: int) -> int:
    try:
        return max(0, int(os.environ.get(name, default)))
    except ValueError:
        return default


@dataclass(frozen=True)
class VetOptions:
    """How hard to vet: limits of the worker process and effort of the property suite."""

    timeout_s: float = 30.0
    """Wall-clock limit per candidate in the worker (the parent kills the process group)."""
    cpu_s: int = 40
    """CPU-time limit of the worker (RLIMIT_CPU)."""
    memory_mb: int = 2048
    """Address space the worker may add after importing torch (RLIMIT_AS)."""
    examples: int = 20
    """Hypothesis examples (random batches) beyond the explicit edge batches."""
    production_batch: int = 3200
    """B for the production-shape time/memory gate and the equivalence check (32 episodes x 100 steps)."""
    max_forward_ms: float = 2000.0
    """Forward + backward at production_batch must take at most this long."""
    workers: int = 1
    """Pre-warmed workers kept ready (each vets one candidate, then is replaced)."""
    warm_timeout_s: float = 240.0
    """How long a worker may take to start (import torch, warm up)."""
    real_states: bool = True
    """Use states recorded from real rollouts (tfcaf.tasks.samples) when available."""
    max_real_states: int = 256
    """Rows of real states sent to the worker."""
    store: str | None = None
    """Store directory holding recorded states (`<store>/states/<task>.npz`); None: $TFCAF_STORE or ./.tfcaf."""
    record_states: int = field(default_factory=lambda: _env_int("TFCAF_RECORD_STATES", 512))
    """When a task has no recorded states in the store, the first vetting records this many from random
    rollouts (saying so on stderr); 0 = never record (vet on card-range draws only). Default 512, or
    $TFCAF_RECORD_STATES (the test suite sets 0)."""
    drop_root: bool = True
    """When running as root, the worker switches to uid 'nobody' before candidate code runs."""

    def worker_options(self) -> dict:
        return {"cpu_s": self.cpu_s, "memory_mb": self.memory_mb, "examples": self.examples,
                "production_batch": self.production_batch, "max_forward_ms": self.max_forward_ms,
                "drop_root": self.drop_root}


def scrubbed_env() -> dict[str, str]:
    """A minimal environment for the worker: no secrets, keys or tokens, one thread."""
    env = {k: os.environ[k] for k in _ENV_KEEP if k in os.environ}
    env.update({"HOME": "/nonexistent", "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "TFCAF_THREADS": "1",
                "PYTHONDONTWRITEBYTECODE": "1", "PYTHONHASHSEED": "0", "PYTHONNOUSERSITE": "1",
                "XLA_PYTHON_CLIENT_PREALLOCATE": "false", "CUDA_VISIBLE_DEVICES": ""})
    if os.environ.get("TFCAF_WORKER_STDERR") == "1":
        env["TFCAF_WORKER_STDERR"] = "1"
    return env


class Worker:
    """One fork server process (its own session): vets one candidate at a time, each in a fresh child."""

    def __init__(self) -> None:
        self.cwd = tempfile.mkdtemp(prefix="tfcaf-worker-")
        os.chmod(self.cwd, 0o711)
        self.started = time.monotonic()
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "tfcaf.sandbox.worker"], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
            stderr=None if os.environ.get("TFCAF_WORKER_STDERR") == "1" else subprocess.DEVNULL,
            cwd=self.cwd, env=scrubbed_env(), start_new_session=True, close_fds=True)
        self._buf = b""
        self.ready_info: dict | None = None
        self.healthy = True

    def read_message(self, deadline: float) -> dict | None:
        """The next JSON line from the worker, or None on EOF / deadline."""
        fd = self.proc.stdout.fileno()  # type: ignore[union-attr]
        while b"\n" not in self._buf:
            left = deadline - time.monotonic()
            if left <= 0:
                return None
            r, _, _ = select.select([fd], [], [], min(left, 1.0))
            if not r:
                continue
            chunk = os.read(fd, 1 << 20)
            if not chunk:
                self.healthy = False
                return None
            self._buf += chunk
            if len(self._buf) > MAX_RESULT_BYTES:
                self.healthy = False
                raise OverflowError("worker output exceeded the cap")
        line, _, self._buf = self._buf.partition(b"\n")
        try:
            msg = json.loads(line)
        except RecursionError:  # a hostile worker's deeply nested answer must not crash the trusted process
            raise ValueError("worker message nested too deeply") from None
        if not isinstance(msg, dict):
            raise ValueError("worker message is not an object")
        return msg

    def wait_ready(self, timeout: float) -> dict:
        if self.ready_info is None:
            msg = self.read_message(self.started + timeout)
            if msg is None or not msg.get("ready"):
                self.healthy = False
                raise RuntimeError(f"sandbox worker failed to start: {(msg or {}).get('error', 'no answer')}")
            self.ready_info = msg
        return self.ready_info

    def run(self, request: dict, timeout: float) -> tuple[dict | None, bool, bool, int | None]:
        """Send one request; returns (result or None, started, timed_out, child exit code)."""
        nonce = request["nonce"]
        self.proc.stdin.write((json.dumps(request) + "\n").encode())  # type: ignore[union-attr]
        self.proc.stdin.flush()  # type: ignore[union-attr]
        deadline = time.monotonic() + timeout
        child: int | None = None
        result, started, timed_out = None, False, False
        while True:
            msg = self.read_message(deadline)
            if msg is None:
                if not self.healthy:
                    return result, started, timed_out, None
                timed_out = True
                if child is not None:
                    _killpg(child)
                deadline = time.monotonic() + 15.0  # the server reports the child's end
                msg = self.read_message(deadline)
                if msg is None:
                    self.healthy = False
                    return result, started, True, None
            if "child" in msg:
                child = int(msg["child"])
            elif msg.get("started") and msg.get("nonce") == nonce:
                started = True
            elif "result" in msg and msg.get("nonce") == nonce and result is None:
                result = msg["result"]
            elif "done" in msg:
                return result, started, timed_out, int(msg["done"])

    def kill(self) -> None:
        self.healthy = False
        _killpg(self.proc.pid)
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            pass
        for stream in (self.proc.stdin, self.proc.stdout):
            try:
                if stream:
                    stream.close()
            except OSError:
                pass
        try:
            os.rmdir(self.cwd)
        except OSError:
            pass


def _killpg(pid: int) -> None:
    try:
        os.killpg(pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


def _load_real_states(task: str, limit: int, store: str | None = None) -> list | None:
    """Up to `limit` evenly spaced rows of the task's recorded rollout states, or None."""
    if importlib.util.find_spec("tfcaf.tasks.samples") is None:
        return None
    try:
        samples = importlib.import_module("tfcaf.tasks.samples")
        states = samples.load_states(task, store)
    except Exception:  # noqa: BLE001 - real states are optional
        return None
    if states is None or len(states) == 0:
        return None
    step = max(1, len(states) // limit)
    return [[float(x) for x in row] for row in states[::step][:limit]]


def _ensure_recorded(task: str, o: VetOptions) -> bool:
    """Record `o.record_states` real states of `task` into the store when there are none; True when
    recorded states exist afterwards. Failures (environment not installed) leave vetting on card-range
    states, with one line on stderr."""
    if not o.real_states:
        return False
    try:
        from tfcaf.tasks.samples import load_states, record_states, states_path
    except ImportError:
        return False
    try:
        if load_states(task, o.store) is not None:
            return True
    except Exception:  # noqa: BLE001 - an unreadable file is re-recorded below
        pass
    if o.record_states <= 0:
        return False
    path = states_path(task, o.store)
    print(f"tfcaf: recording {o.record_states} real rollout states of {task} into {path} for vetting "
          "(first vetting of this task in this store)", file=sys.stderr)
    try:
        record_states(task, o.record_states, store=o.store)
    except Exception as err:  # noqa: BLE001 - e.g. the environment is not installed
        print(f"tfcaf: could not record states of {task} ({type(err).__name__}: {str(err)[:160]}); "
              "vetting uses states drawn from the card's ranges", file=sys.stderr)
        return False
    return True


def _graph_check(graph: Any, card: TaskCard) -> tuple[str | None, dict]:
    """Trusted re-check of the returned graph: loads under the allow-list, right shape, finite, IGM."""
    import torch

    from tfcaf.sandbox.graph import graph_digest, load_graph
    from tfcaf.states import uniform_states

    try:
        module = load_graph(graph)
    except RejectedError as err:
        return str(err), {}
    gen = torch.Generator().manual_seed(7)
    q = (torch.randn(256, card.n_agents, generator=gen) * 10).requires_grad_(True)
    s = uniform_states(card, 256, gen)  # [256, S]
    try:
        out = module(q, s)
        if tuple(out.shape) != (256, 1) or not bool(torch.isfinite(out).all()):
            return f"the rebuilt graph returns shape {list(out.shape)} or non-finite values", {}
        (grad,) = torch.autograd.grad(out.sum(), q)
        if card.requires_igm and float(grad.min()) < -1e-5:
            return "the rebuilt graph is not monotone in agents_q", {}
    except Exception as err:  # noqa: BLE001 - a bad graph is the candidate's
        return f"the rebuilt graph failed to run: {type(err).__name__}: {str(err)[:200]}", {}
    return None, {"graph_sha256": graph_digest(graph)}


class Vetter:
    """Vets candidates with pre-warmed fork servers (each candidate runs in a fresh forked child).
    Thread-safe: up to `options.workers` candidates run at once. Use as a context manager."""

    def __init__(self, options: VetOptions | None = None) -> None:
        self.options = options or VetOptions()
        self._cond = threading.Condition()
        self._idle: list[Worker] = []
        self._count = 0
        self._states: dict[str, list | None] = {}
        self._recorded: dict[str, bool] = {}
        self._closed = False
        for _ in range(max(1, self.options.workers)):
            self._idle.append(Worker())
            self._count += 1

    def __enter__(self) -> "Vetter":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def close(self) -> None:
        with self._cond:
            self._closed = True
            idle, self._idle = self._idle, []
            self._cond.notify_all()
        for w in idle:
            w.kill()

    def _take(self) -> Worker:
        with self._cond:
            while True:
                if self._closed:
                    raise RuntimeError("Vetter is closed")
                if self._idle:
                    return self._idle.pop(0)
                if self._count < max(1, self.options.workers):
                    self._count += 1
                    return Worker()
                self._cond.wait()

    def _give_back(self, worker: Worker) -> None:
        with self._cond:
            if worker.healthy and not self._closed:
                self._idle.append(worker)
            else:
                worker.kill()
                self._count -= 1
                if not self._closed:  # replace it now, so it warms up while others work
                    self._idle.append(Worker())
                    self._count += 1
            self._cond.notify()

    def ensure_states(self, task: str) -> bool:
        """Record the task's real rollout states into the store when it has none (once per Vetter and
        task; says so on stderr). True when recorded states are available afterwards."""
        with self._cond:
            if task in self._recorded:
                return self._recorded[task]
        ok = _ensure_recorded(task, self.options)
        with self._cond:
            self._recorded[task] = ok
        return ok

    def _real_states(self, task: str) -> list | None:
        if not self.options.real_states:
            return None
        if task not in self._states:
            self.ensure_states(task)
            self._states[task] = _load_real_states(task, self.options.max_real_states, self.options.store)
        return self._states[task]

    def vet(self, text: str, card: TaskCard) -> Verdict:
        """Vet one raw LLM response (or a module's source) against a task card."""
        t0 = time.perf_counter()
        source = None
        try:
            source = extract_source(text)
            check_module(source)
        except Rejection as rej:
            return rej.verdict(source=source, metrics={"total_ms": round((time.perf_counter() - t0) * 1e3, 1)})
        verdict = self._run_worker(source, card)
        metrics = dict(verdict.metrics)
        if verdict.accepted:
            problem, extra = _graph_check(verdict.graph, card)
            if problem is not None:
                return rejected("export", "export", problem, source=source, metrics=metrics)
            metrics.update(extra)
        metrics["total_ms"] = round((time.perf_counter() - t0) * 1e3, 1)
        return Verdict(verdict.verdict, verdict.status, verdict.stage, verdict.reasons, verdict.counterexample,
                       metrics, source, verdict.graph if verdict.accepted else None)

    def _run_worker(self, source: str, card: TaskCard) -> Verdict:
        import secrets

        from tfcaf.sandbox.worker import card_to_dict

        o = self.options
        worker = self._take()
        try:
            try:
                ready = worker.wait_ready(o.warm_timeout_s)
            except (RuntimeError, OverflowError, ValueError) as err:
                return infrastructure("worker", str(err))
            request = {"source": source, "card": card_to_dict(card), "options": o.worker_options(),
                       "states": self._real_states(card.name), "nonce": secrets.token_hex(8)}
            try:
                result, started, timed_out, code = worker.run(request, o.timeout_s)
            except OSError as err:
                worker.healthy = False
                return infrastructure("worker", f"could not reach the sandbox worker: {err}")
            except OverflowError:
                worker.healthy = False
                return rejected("runtime", "worker", "the worker's output exceeded the cap")
            except ValueError:
                worker.healthy = False
                return rejected("runtime", "worker", "the worker's output was not valid JSON")
            if result is not None and not timed_out:
                result.setdefault("metrics", {})["worker_warm_ms"] = ready.get("warm_ms")
                try:
                    return Verdict.from_json({**result, "source": source})
                except (KeyError, ValueError, TypeError) as err:
                    return infrastructure("worker", f"malformed result from the worker: {err}")
            return _classify_exit(o, started, timed_out, code)
        finally:
            self._give_back(worker)


def _classify_exit(o: VetOptions, started: bool, timed_out: bool, code: int | None) -> Verdict:
    """A child that ended without a result: time-out, resource limit, crash, or infrastructure."""
    if timed_out:
        return rejected("timeout", "worker", f"vetting took longer than {o.timeout_s:g} s wall-clock: the sandbox process was killed",
                        metrics={"timeout_s": o.timeout_s})
    if not started or code is None:
        return infrastructure("worker", f"the sandbox worker failed before running the candidate (exit {code})")
    if code < 0:
        sig = -code
        name = signal.Signals(sig).name if sig in signal.valid_signals() else str(sig)
        if sig == signal.SIGXCPU:
            return rejected("timeout", "worker", f"the candidate exceeded the CPU-time limit ({o.cpu_s} s)")
        if sig == signal.SIGXFSZ:
            return rejected("escape", "worker", "the candidate tried to write a file")
        if sig == signal.SIGKILL:
            return rejected("memory", "worker", "the sandbox process was killed (SIGKILL: out of memory)")
        return rejected("runtime", "worker", f"the sandbox process died with {name} while running the candidate")
    return rejected("runtime", "worker", f"the sandbox process exited (code {code}) while running the candidate")


def vet(text: str, card: TaskCard, options: VetOptions | None = None) -> Verdict:
    """One-shot vetting (starts and discards one worker; use a `Vetter` for many candidates)."""
    with Vetter(VetOptions(**{**asdict(options or VetOptions()), "workers": 1})) as vetter:
        return vetter.vet(text, card)
