"""The sandbox worker, started by `tfcaf.sandbox.vetting` as `python -m tfcaf.sandbox.worker`:
a fork server that runs every candidate in a fresh forked child.

Protocol (JSON lines, never pickle): the server warms up (imports torch, vets a known-good function
once so lazy imports are done), moves into a new network namespace where the OS allows, writes
``{"ready": ...}``, then per request line ``{"source", "card", "options", "states", "nonce"}`` forks a
child and writes ``{"child": pid}``. The child starts its own session (the parent kills its process
group on time-out), applies resource limits, drops root, writes ``{"started": true}`` just before
candidate code first runs, then one ``{"result": verdict-json}``, and exits. When the child is gone the
server writes ``{"done": exit-code}``. File descriptors 1 and 2 point to /dev/null: the protocol uses
a private duplicate of the original stdout pipe, so prints and C-level writes cannot corrupt it.
"""

from __future__ import annotations

import ctypes
import json
import os
import resource
import sys
import time
from typing import Any, TextIO

CLONE_NEWNET = 0x40000000
NOBODY = 65534
PR_SET_NO_NEW_PRIVS = 38


def card_to_dict(card: Any) -> dict:
    """The card as strict JSON data (the one serialisation: tfcaf.tasks.card.card_to_json)."""
    from tfcaf.tasks.card import card_to_json

    return card_to_json(card)


def card_from_dict(data: dict) -> Any:
    from tfcaf.tasks.card import card_from_json

    return card_from_json(data)


def _isolate_network() -> bool:
    """Move into a fresh network namespace (no interfaces but a down loopback). False when not permitted."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        return libc.unshare(CLONE_NEWNET) == 0
    except (OSError, AttributeError):
        return False


def _vm_bytes() -> int:
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmSize:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def _limit(which: int, value: int) -> bool:
    try:
        soft, hard = resource.getrlimit(which)
        new_hard = value if hard == resource.RLIM_INFINITY or value <= hard else hard
        resource.setrlimit(which, (min(value, new_hard), new_hard))
        return True
    except (ValueError, OSError):
        return False


def apply_limits(options: dict) -> dict:
    """Resource limits, set after torch is imported (RLIMIT_AS before `import torch` breaks it). Returns what held."""
    held: dict[str, Any] = {}
    held["cpu"] = _limit(resource.RLIMIT_CPU, int(options.get("cpu_s", 60)))
    held["fsize"] = _limit(resource.RLIMIT_FSIZE, 0)
    held["core"] = _limit(resource.RLIMIT_CORE, 0)
    held["as"] = _limit(resource.RLIMIT_AS, _vm_bytes() + int(options.get("memory_mb", 2048)) * 1024 * 1024)
    try:  # no privilege gains through exec of setuid binaries
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0)
        held["no_new_privs"] = True
    except (OSError, AttributeError):
        held["no_new_privs"] = False
    if os.getuid() == 0 and options.get("drop_root", True):  # root ignores RLIMIT_NPROC: become nobody first
        try:
            os.setgroups([])
            os.setgid(NOBODY)
            os.setuid(NOBODY)
            held["uid"] = NOBODY
        except OSError:
            held["uid"] = 0
    else:
        held["uid"] = os.getuid()
    held["nproc"] = _limit(resource.RLIMIT_NPROC, 0) and os.getuid() != 0
    return held


def _warm_up() -> None:
    """Run the whole pipeline once on VDN so the first real candidate does not pay for lazy imports."""
    from tfcaf.tasks.registry import get_card

    result = run_pipeline(_WARM_SOURCE, get_card("matrix_climbing"), {"examples": 2}, None, lambda: None)
    if result["verdict"] != "accepted":
        raise RuntimeError(f"warm-up candidate was not accepted: {result['reasons']}")


_WARM_SOURCE = """
import math
import torch
import torch.nn.functional as F
def QLLMNetwork(agents_q, global_state):
    n = agents_q.shape[1]
    w = F.softmax(torch.stack([global_state[:, 0] * float(i) for i in range(n)], dim=1), dim=-1)  # [B, N]
    w = torch.where(global_state[:, :1] > 0, w, torch.ones_like(w) / n) * torch.tensor([1.0] * n)
    z = torch.zeros_like(agents_q)
    z[:, 0] = torch.sigmoid(global_state[:, 0]) * 0.0
    best = agents_q.max(dim=1, keepdim=True).values
    lse = torch.logsumexp(agents_q, dim=1, keepdim=True) - math.log(n)
    x = (w * agents_q + z).sum(dim=-1, keepdim=True).clamp(-1e6, 1e6)
    return x + 0.1 * best + 0.1 * lse + torch.tanh(global_state.mean(dim=1, keepdim=True)) * 0.0
"""


def _classify(err: BaseException, stage: str) -> dict:
    from tfcaf.sandbox.namespace import BlockedAttribute
    from tfcaf.verdict import Rejection

    if isinstance(err, Rejection):
        return err.verdict().to_json()
    if isinstance(err, BlockedAttribute):
        status = "escape" if err.escape else "restricted"
        return {"verdict": "rejected", "status": status, "stage": "restricted", "reasons": [str(err)]}
    text = str(err).strip().splitlines()[0][:300] if str(err).strip() else ""
    if isinstance(err, MemoryError) or "alloc" in text.lower() and "memory" in text.lower() or "DefaultCPUAllocator" in text:
        return {"verdict": "rejected", "status": "memory", "stage": "worker", "reasons": [f"out of memory ({type(err).__name__}: {text[:120]})"]}
    if isinstance(err, ImportError) or (isinstance(err, LookupError) and "encoding" in text):
        # Candidates cannot import (the AST gate removes imports): a failed lazy import inside torch after the
        # worker dropped root is the sandbox's fault, not the candidate's.
        return {"verdict": "error", "status": "infrastructure", "stage": "worker",
                "reasons": [f"a lazy import failed inside the sandbox ({type(err).__name__}: {text[:160]}); "
                            "retry, or vet with VetOptions(drop_root=False)"]}
    if isinstance(err, RecursionError):
        return {"verdict": "rejected", "status": "runtime", "stage": "worker", "reasons": ["maximum recursion depth exceeded"]}
    return {"verdict": "rejected", "status": "runtime", "stage": stage,
            "reasons": [f"the function raised {type(err).__name__}: {text}" if text else f"the function raised {type(err).__name__}"]}


def run_pipeline(source: str, card: Any, options: dict, states: Any, on_start: Any) -> dict:
    """AST gate -> restricted load -> properties -> export -> equivalence. Returns verdict JSON."""
    import torch

    from tfcaf.evaluator.properties import PropertyOptions, run_properties
    from tfcaf.sandbox.astgate import check_module
    from tfcaf.sandbox.export import export_graph
    from tfcaf.sandbox.graph import load_graph
    from tfcaf.sandbox.namespace import load_candidate
    from tfcaf.states import uniform_states
    from tfcaf.verdict import Rejection

    timings: dict[str, float] = {}
    t = time.perf_counter()
    stage = "restricted"
    try:
        gate = check_module(source)
        on_start()
        fn = load_candidate(gate)
        timings["load_ms"] = (time.perf_counter() - t) * 1e3
        stage = "properties"
        t = time.perf_counter()
        prop_fields = set(PropertyOptions.__dataclass_fields__)
        popts = PropertyOptions(**{k: v for k, v in options.items() if k in prop_fields})
        real = torch.tensor(states, dtype=torch.float32) if states else None
        metrics = run_properties(fn, card, popts, real)
        timings["properties_total_ms"] = (time.perf_counter() - t) * 1e3
        stage = "export"
        t = time.perf_counter()
        graph = export_graph(fn, card.n_agents, card.state_dim)
        graph = json.loads(json.dumps(graph, allow_nan=False))
        module = load_graph(graph)
        gen = torch.Generator().manual_seed(12345)
        for b in (2, 7, 64, int(options.get("production_batch", 3200))):
            q = torch.randn(b, card.n_agents, generator=gen) * 10.0
            s = uniform_states(card, b, gen)  # [B, S]
            if real is not None and b <= real.shape[0]:
                s = real[:b]
            with torch.no_grad():
                eager, compiled = fn(q, s), module(q, s)
            if tuple(compiled.shape) != (b, 1) or not torch.allclose(eager, compiled, rtol=1e-4, atol=1e-4 * (1 + float(eager.abs().max()))):
                diff = float((eager - compiled).abs().max()) if compiled.shape == eager.shape else float("nan")
                raise Rejection("export", "export", f"the compiled graph differs from the function at B={b} (max |diff| {diff:.3g}); "
                                "avoid Python-level branching on tensor values")
        timings["export_ms"] = (time.perf_counter() - t) * 1e3
    except Exception as err:  # noqa: BLE001 - every candidate failure becomes a verdict
        out = _classify(err, stage)
        out.setdefault("metrics", {}).update({k: round(v, 1) for k, v in timings.items()})
        return out
    metrics.update({k: round(v, 1) for k, v in timings.items()})
    metrics["graph_nodes"] = len(graph["nodes"])
    metrics["real_states"] = 0 if real is None else int(real.shape[0])
    return {"verdict": "accepted", "status": "ok", "stage": "export", "reasons": ["passed every gate"],
            "metrics": metrics, "graph": graph}


def _send(proto: TextIO, obj: dict) -> None:
    proto.write(json.dumps(obj) + "\n")
    proto.flush()


def _serve_one(proto: TextIO, line: str, net: bool) -> None:
    """In the forked child: own session, limits, then the candidate. Never returns."""
    code = 0
    try:
        os.setsid()
        null = os.open(os.devnull, os.O_RDONLY)
        os.dup2(null, 0)
        request = json.loads(line)
        card = card_from_dict(request["card"])
        options = dict(request.get("options") or {})
        nonce = request.get("nonce")
        limits = apply_limits(options)
    except BaseException as err:  # noqa: BLE001
        _send(proto, {"result": {"verdict": "error", "status": "infrastructure", "stage": "worker",
                                 "reasons": [f"bad request to the worker: {type(err).__name__}: {err}"[:300]]}})
        os._exit(3)
    try:
        result = run_pipeline(request["source"], card, options, request.get("states"),
                              lambda: _send(proto, {"started": True, "nonce": nonce}))
        result.setdefault("metrics", {})["sandbox"] = {**limits, "net_isolated": net, "fork_server": True}
        _send(proto, {"result": result, "nonce": nonce})
    except BaseException:  # noqa: BLE001 - e.g. MemoryError while serialising: the parent classifies the exit
        code = 4
    os._exit(code)


def main() -> int:
    """Fork server: warm up once, then fork one fresh child per request (each child runs one candidate)."""
    proto = os.fdopen(os.dup(1), "w")
    devnull = os.open(os.devnull, os.O_WRONLY)
    keep_stderr = os.environ.get("TFCAF_WORKER_STDERR") == "1"
    os.dup2(devnull, 1)
    if not keep_stderr:
        os.dup2(devnull, 2)
    sys.stdout = open(os.devnull, "w")
    if not keep_stderr:
        sys.stderr = open(os.devnull, "w")
    t0 = time.perf_counter()
    try:
        from tfcaf.runtime import configure_torch

        configure_torch(1)
        _warm_up()
        net = _isolate_network()
    except BaseException as err:  # noqa: BLE001
        _send(proto, {"ready": False, "error": f"{type(err).__name__}: {err}"[:500]})
        return 3
    _send(proto, {"ready": True, "net_isolated": net, "warm_ms": round((time.perf_counter() - t0) * 1e3, 1), "pid": os.getpid()})
    while True:
        line = sys.stdin.readline()
        if not line:
            return 0
        pid = os.fork()
        if pid == 0:
            _serve_one(proto, line, net)
        _send(proto, {"child": pid})
        _, status = os.waitpid(pid, 0)
        _send(proto, {"done": os.waitstatus_to_exitcode(status)})


if __name__ == "__main__":
    sys.exit(main())
