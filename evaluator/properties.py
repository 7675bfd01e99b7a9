"""Property tests for a candidate credit function, run inside the sandbox worker (Hypothesis).

Gates (a failure rejects with a readable reason and a counterexample): output shape [B, 1] with the
inputs' dtype and device; finite outputs; a finite gradient wrt agents_q that is not zero everywhere;
IGM monotonicity dQ_tot/dQ_i >= 0 when the card requires it; batch independence; determinism; inputs
not mutated; a bounded output scale; time and peak memory at production shapes (B = 32 x 100).
Soft metrics (reported, never gates): dead-agent credit, state dependence, distance to VDN.

States come from the card's declared ranges (infinite bounds clamped to +-state_bound), edge states
(zeros, bounds, all/some agents dead per the card's alive flag) and real rollout states when given.
Q values reach +-1e3.
"""

from __future__ import annotations

import math
import resource
import time
from dataclasses import dataclass
from typing import Any, Callable

from tfcaf.contract import ContractError, check_output
from tfcaf.contract import vdn as contract_vdn
from tfcaf.states import state_bounds
from tfcaf.verdict import Rejection
from tfcaf.tasks.card import TaskCard

PATTERNS = ("uniform", "edge", "zeros", "low", "high", "dead_all", "dead_some", "real")
Q_KINDS = ("normal", "equal", "negative", "positive", "tiny", "large")


@dataclass(frozen=True)
class PropertyOptions:
    """Settings of the property suite (all gates are on; these tune effort and tolerance)."""

    examples: int = 20
    """Hypothesis examples (random batches) after the explicit edge batches."""
    max_batch: int = 48
    """Largest random batch."""
    q_bound: float = 1e3
    """Largest |Q_i| drawn."""
    state_bound: float = 1e3
    """Infinite state bounds are clamped to +-this."""
    igm_tolerance: float = 1e-5
    """dQ_tot/dQ_i >= -tolerance counts as monotone (float error)."""
    scale_factor: float = 100.0
    """|Q_tot| must stay <= scale_factor * N * max(1, max|Q_i|)."""
    production_batch: int = 3200
    """B at production shapes (32 episodes x 100 steps)."""
    max_forward_ms: float = 2000.0
    """Forward + backward at production_batch must take at most this long."""
    max_memory_mb: float = 1024.0
    """Peak resident memory growth allowed at production shapes."""
    seed: int = 0


def _grad_of(fn: Callable, q: Any, s: Any) -> tuple[Any, Any]:
    import torch

    qg = q.detach().clone().requires_grad_(True)
    out = fn(qg, s)
    _check_contract(out, qg)
    if not out.requires_grad:
        return out, None
    (grad,) = torch.autograd.grad(out.sum(), qg, allow_unused=True)
    return out, grad


def _check_contract(out: Any, q: Any) -> None:
    try:
        check_output(out, q, finite=False)
    except ContractError as err:
        raise Rejection("contract", "properties", str(err)) from None


def _row(q: Any, s: Any, i: int, **extra: Any) -> dict:
    def r(xs: Any) -> list:
        return [float(f"{float(x):.6g}") for x in xs.reshape(-1)[:64].tolist()]
    row = {"agents_q": r(q[i]), "global_state": r(s[i])}
    for k, v in extra.items():
        row[k] = r(v[i]) if hasattr(v, "shape") else v
    return row


class Sampler:
    """Builds (agents_q [B, N], global_state [B, S]) batches for a card (float32, CPU)."""

    def __init__(self, card: TaskCard, options: PropertyOptions, real_states: Any = None) -> None:
        import torch

        self.card, self.options = card, options
        self.low, self.high = state_bounds(card, options.state_bound)  # [S], [S]
        self.real = real_states if real_states is not None and len(real_states) else None  # [M, S]

    def states(self, gen: Any, b: int, pattern: str) -> Any:
        import torch

        s_dim = self.card.state_dim
        u = torch.rand(b, s_dim, generator=gen)
        if pattern == "real" and self.real is not None:
            idx = torch.randint(0, self.real.shape[0], (b,), generator=gen)
            return self.real[idx].clone()
        if pattern == "zeros":
            return torch.maximum(torch.minimum(torch.zeros(b, s_dim), self.high), self.low)
        if pattern == "low":
            return self.low.expand(b, s_dim).clone()
        if pattern == "high":
            return self.high.expand(b, s_dim).clone()
        s = self.low + u * (self.high - self.low)  # [B, S]
        if pattern == "edge":
            pick = torch.randint(0, 3, (b, s_dim), generator=gen)
            zero = torch.maximum(torch.minimum(torch.zeros(s_dim), self.high), self.low)
            s = torch.where(pick == 0, self.low.expand_as(s), torch.where(pick == 1, self.high.expand_as(s), zero.expand_as(s)))
        if pattern in ("dead_all", "dead_some") and self.card.alive is not None:
            s = self.kill(s, gen, everyone=pattern == "dead_all")
        return s

    def dead_value(self, col: int) -> float:
        thr = self.card.alive.threshold  # type: ignore[union-attr]
        return float(max(self.low[col].item(), min(thr, self.high[col].item())))

    def kill(self, s: Any, gen: Any, everyone: bool) -> Any:
        import torch

        cols = self.card.alive.columns  # type: ignore[union-attr]
        s = s.clone()
        dead = torch.ones(s.shape[0], len(cols), dtype=torch.bool) if everyone else torch.rand(s.shape[0], len(cols), generator=gen) < 0.5
        for i, c in enumerate(cols):
            s[:, c] = torch.where(dead[:, i], torch.full_like(s[:, c], self.dead_value(c)), s[:, c])
        return s

    def alive_mask(self, s: Any) -> Any:
        """[B, N] bool, from the card's alive flag (None without one)."""
        if self.card.alive is None:
            return None
        cols = list(self.card.alive.columns)
        return s[:, cols] > self.card.alive.threshold

    def agents_q(self, gen: Any, b: int, kind: str, scale: float) -> Any:
        import torch

        n = self.card.n_agents
        bound = self.options.q_bound
        z = torch.randn(b, n, generator=gen)
        q = {"normal": z * scale, "equal": z[:, :1].expand(b, n) * scale, "negative": -z.abs() * scale - 1e-3,
             "positive": z.abs() * scale + 1e-3, "tiny": z * 1e-3, "large": z.sign() * bound}[kind]
        return q.clamp(-bound, bound).contiguous()


class PropertySuite:
    """Runs every gate on many batches; `run()` returns metrics or raises Rejection."""

    def __init__(self, fn: Callable, card: TaskCard, options: PropertyOptions | None = None, real_states: Any = None) -> None:
        self.fn, self.card = fn, card
        self.options = options or PropertyOptions()
        self.sampler = Sampler(card, self.options, real_states)
        self.min_grad = math.inf
        self.batches = 0
        self.dead_ratio: list[float] = []
        self.grad_seen = 0.0
        self.zero_grad_example: tuple | None = None

    # -- one batch: every gate --------------------------------------------------------------------
    def check(self, q: Any, s: Any, pattern: str, kind: str) -> None:
        import torch

        o = self.options
        q0, s0 = q.clone(), s.clone()
        where = f"(state pattern '{pattern}', Q kind '{kind}', B={q.shape[0]})"
        out = self.fn(q, s)
        _check_contract(out, q)
        out = out.detach()
        if not bool(torch.equal(q, q0)) or not bool(torch.equal(s, s0)):
            raise self._fail("inputs_not_mutated", f"the function modified its inputs in place {where}", q0, s0, 0)
        bad = ~torch.isfinite(out).reshape(-1)
        if bool(bad.any()):
            i = int(bad.nonzero()[0])
            raise self._fail("finite_output", f"Q_tot is {float(out[i, 0])} {where}", q, s, i, q_tot=out)
        bound = o.scale_factor * self.card.n_agents * max(1.0, float(q.abs().max()))
        big = out.abs().reshape(-1) > bound
        if bool(big.any()):
            i = int(big.nonzero()[0])
            raise self._fail("bounded_scale", f"|Q_tot| = {float(out[i, 0]):.4g} exceeds {bound:.4g} = {o.scale_factor:g} * N * max(1, max|Q_i|) {where}",
                             q, s, i, q_tot=out)
        again = self.fn(q, s).detach()
        if not bool(torch.equal(again, out)) and not bool(torch.allclose(again, out, rtol=1e-6, atol=1e-6, equal_nan=True)):
            i = int((again - out).abs().reshape(-1).argmax())
            raise self._fail("deterministic", f"two calls on the same inputs differ ({float(out[i, 0]):.6g} vs {float(again[i, 0]):.6g}) {where}", q, s, i)
        tol = 1e-4 * (1.0 + float(out.abs().max()))
        b = q.shape[0]
        perm = torch.arange(b - 1, -1, -1)
        shuffled = self.fn(q[perm], s[perm]).detach()
        _check_contract(shuffled, q[perm])
        diff = (shuffled - out[perm]).abs().reshape(-1)
        if bool((diff > tol).any()):
            k = int(diff.argmax())
            raise self._fail("batch_independence", f"row {int(perm[k])} gives {float(out[perm[k], 0]):.6g} in one batch and "
                             f"{float(shuffled[k, 0]):.6g} when the batch is reordered {where}: rows must not depend on each other", q, s, int(perm[k]))
        for i in sorted({0, b // 2, b - 1}):
            single = self.fn(q[i:i + 1], s[i:i + 1]).detach()
            _check_contract(single, q[i:i + 1])
            if float((single[0, 0] - out[i, 0]).abs()) > tol:
                raise self._fail("batch_independence", f"row {i} gives {float(out[i, 0]):.6g} in a batch of {b} and {float(single[0, 0]):.6g} alone {where}", q, s, i)
        qg = q.clone().requires_grad_(True)
        out_g = self.fn(qg, s)
        _check_contract(out_g, qg)
        if not bool(torch.allclose(out_g.detach(), out, rtol=1e-6, atol=1e-6)):
            raise self._fail("deterministic", f"the output changes when agents_q requires a gradient {where}", q, s, 0)
        if not out_g.requires_grad:
            raise self._fail("gradient", f"Q_tot does not depend on agents_q (no gradient) {where}", q, s, 0)
        (grad,) = torch.autograd.grad(out_g.sum(), qg, allow_unused=True)  # rows are independent: per-row gradients
        if grad is None:
            raise self._fail("gradient", f"Q_tot does not depend on agents_q (no gradient) {where}", q, s, 0)
        bad = ~torch.isfinite(grad).all(dim=1)
        if bool(bad.any()):
            i = int(bad.nonzero()[0])
            raise self._fail("finite_gradient", f"dQ_tot/dQ is not finite {where}", q, s, i, grad=grad)
        if pattern in ("uniform", "real", "edge") and kind in ("normal", "positive"):
            # Gated over the whole suite (see run): a zero gradient in one small batch can be legitimate
            # (e.g. every agent dead, or a state-dependent mask that is off in those rows).
            self.grad_seen = max(self.grad_seen, float(grad.abs().max()))
            if self.zero_grad_example is None and float(grad.abs().max()) == 0.0:
                self.zero_grad_example = (q, s, where)
        self.min_grad = min(self.min_grad, float(grad.min()))
        if self.card.requires_igm and float(grad.min()) < -o.igm_tolerance:
            i, j = divmod(int(grad.argmin()), grad.shape[1])
            raise self._fail("igm_monotone", f"dQ_tot/dQ_{j} = {float(grad[i, j]):.4g} < 0 {where}; the task requires "
                             "Q_tot to be non-decreasing in every Q_i (use non-negative weights that depend on the state only)",
                             q, s, i, grad=grad)
        alive = self.sampler.alive_mask(s)
        if alive is not None and pattern == "dead_some":
            dead = ~alive
            if bool(dead.any()) and bool(alive.any()):
                g = grad.abs()
                self.dead_ratio.append(float(g[dead].mean() / (g[alive].mean() + 1e-8)))
        self.batches += 1

    def _fail(self, prop: str, detail: str, q: Any, s: Any, i: int, **extra: Any) -> Rejection:
        return Rejection("property", "properties", f"property '{prop}' failed: {detail}",
                         counterexample={"property": prop, "row": _row(q, s, i, **extra), "batch_size": int(q.shape[0])})

    # -- the suite ----------------------------------------------------------------------------------
    def batch(self, seed: int, pattern: str, kind: str, scale: float, b: int) -> tuple[Any, Any]:
        import torch

        gen = torch.Generator().manual_seed(seed)
        return self.sampler.agents_q(gen, b, kind, scale), self.sampler.states(gen, b, pattern)

    def explicit(self) -> list[tuple[int, str, str, float, int]]:
        cases = [(1, "uniform", "normal", 1.0, 16), (2, "zeros", "normal", 1.0, 8), (3, "low", "positive", 10.0, 8),
                 (4, "high", "negative", 10.0, 8), (5, "edge", "large", 1.0, 16), (6, "uniform", "equal", 1.0, 8),
                 (7, "uniform", "tiny", 1.0, 8)]
        if self.card.alive is not None:
            cases += [(8, "dead_all", "normal", 1.0, 8), (9, "dead_some", "normal", 10.0, 32), (10, "dead_some", "normal", 1.0, 32)]
        if self.sampler.real is not None:
            cases += [(11, "real", "normal", 1.0, 32), (12, "real", "normal", 100.0, 32)]
        return cases

    def run(self) -> dict:
        """All gates; returns soft metrics and timings, or raises Rejection."""
        from hypothesis import HealthCheck, Phase, given, settings
        from hypothesis import strategies as st

        t0 = time.perf_counter()
        for case in self.explicit():
            self.check(*self.batch(*case[:1], *case[1:4], case[4]), case[1], case[2])
        q, s = self.batch(13, "uniform", "normal", 1.0, 8)
        _check_contract(self.fn(q.double(), s.double()), q.double())  # dtype follows the inputs (float64 too)
        patterns = [p for p in PATTERNS if (p != "real" or self.sampler.real is not None)
                    and (not p.startswith("dead") or self.card.alive is not None)]
        failure: list[BaseException] = []

        @settings(max_examples=self.options.examples, derandomize=True, database=None, deadline=None,
                  phases=[Phase.explicit, Phase.generate], suppress_health_check=list(HealthCheck), print_blob=False,
                  report_multiple_bugs=False)
        @given(seed=st.integers(0, 2**31 - 1), pattern=st.sampled_from(patterns), kind=st.sampled_from(Q_KINDS),
               scale=st.sampled_from((0.01, 1.0, 10.0, 100.0, 1000.0)), b=st.integers(2, self.options.max_batch))
        def explore(seed: int, pattern: str, kind: str, scale: float, b: int) -> None:
            try:
                q, s = self.batch(seed + self.options.seed, pattern, kind, scale, b)
                self.check(q, s, pattern, kind)
            except BaseException as err:
                if not failure:
                    failure.append(err)
                raise

        try:
            explore()
        except BaseException:
            if failure:
                raise failure[0] from None
            raise
        if self.grad_seen == 0.0:
            q, s, where = self.zero_grad_example or (*self.batch(1, "uniform", "normal", 1.0, 16), "")
            raise self._fail("nonzero_gradient", f"dQ_tot/dQ_i is zero for every agent in every row tested {where}: "
                             "Q_tot ignores the agents' Q values", q, s, 0)
        props_ms = (time.perf_counter() - t0) * 1e3
        metrics = self.soft_metrics()
        metrics.update(self.production())
        metrics.update({"property_batches": self.batches, "properties_ms": round(props_ms, 1),
                        "mono_min_grad": _num(self.min_grad)})
        return metrics

    def soft_metrics(self) -> dict:
        import torch

        q, s1 = self.batch(101, "uniform", "normal", 10.0, 64)
        _, s2 = self.batch(102, "uniform", "normal", 10.0, 64)
        out1, g1 = _grad_of(self.fn, q, s1)
        _, g2 = _grad_of(self.fn, q, s2)
        vdn = contract_vdn(q)  # [B, 1]
        metrics = {
            "vdn_distance": _num(float((out1.detach() - vdn).abs().mean() / (vdn.abs().mean() + 1e-8))),
            "state_dependence": _num(float((g1 - g2).abs().mean() / (g1.abs().mean() + 1e-8))) if g1 is not None and g2 is not None else None,
            "dead_agent_credit": _num(sum(self.dead_ratio) / len(self.dead_ratio)) if self.dead_ratio else None,
        }
        if g1 is not None:
            metrics["mean_weight"] = _num(float(g1.mean()))
        del torch
        return metrics

    def production(self) -> dict:
        """Time and peak memory of forward + backward at B = production_batch (and 4x that, forward only)."""
        import torch

        o = self.options
        before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0  # MB
        q, s = self.batch(201, "uniform", "normal", 10.0, o.production_batch)
        times = []
        for _ in range(2):
            t = time.perf_counter()
            out, grad = _grad_of(self.fn, q, s)
            times.append((time.perf_counter() - t) * 1e3)
        fwd_ms = min(times)
        big_q, big_s = self.batch(202, "uniform", "normal", 10.0, 4 * o.production_batch)
        t = time.perf_counter()
        with torch.no_grad():
            big = self.fn(big_q, big_s)
        big_ms = (time.perf_counter() - t) * 1e3
        _check_contract(big, big_q)
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0
        if not bool(torch.isfinite(out).all()) or not bool(torch.isfinite(big).all()):
            raise Rejection("property", "properties", f"property 'finite_output' failed at production shapes (B={o.production_batch} / {4 * o.production_batch})")
        if fwd_ms > o.max_forward_ms:
            raise Rejection("property", "properties", f"property 'production_time' failed: forward+backward at B={o.production_batch} "
                            f"took {fwd_ms:.0f} ms (limit {o.max_forward_ms:.0f} ms); vectorise over the batch")
        if peak - before > o.max_memory_mb:
            raise Rejection("memory", "properties", f"property 'production_memory' failed: peak memory grew by {peak - before:.0f} MB "
                            f"at B={o.production_batch} (limit {o.max_memory_mb:.0f} MB)")
        return {"production_ms": round(fwd_ms, 2), "production_4x_forward_ms": round(big_ms, 2),
                "production_peak_growth_mb": round(peak - before, 1), "peak_rss_mb": round(peak, 1)}


def _num(x: float | None) -> float | None:
    if x is None or not math.isfinite(x):
        return None
    return float(f"{x:.6g}")


def run_properties(fn: Callable, card: TaskCard, options: PropertyOptions | None = None, real_states: Any = None) -> dict:
    """Run the whole property suite on `fn`; returns soft metrics and timings or raises Rejection.

    >>> from tfcaf.tasks.registry import get_card
    >>> m = run_properties(lambda q, s: q.sum(-1, keepdim=True), get_card("matrix_climbing"))
    >>> m["vdn_distance"]
    0.0
    """
    return PropertySuite(fn, card, options, real_states).run()
