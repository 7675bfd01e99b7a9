"""Tier 3 of the reward: micro-tasks with known answers, run on the trusted rebuilt graph.

The graph an accepted candidate exported is rebuilt from plain data under the ATen allow-list
(`tfcaf.sandbox.graph.load_graph`) in this process; no candidate Python runs here. Each check returns a
score in [0, 1]; `micro_score` is their mean over the checks that apply to the task:

- `matrix_optimum` (matrix games, known payoff): fit per-agent utilities Q_i(a_i) so that
  Q_tot(Q_1(a_1), Q_2(a_2)) matches the payoff (Adam, fixed seed and steps), then act greedily on the
  fitted Q_i. 1 when the greedy joint action is the game's optimum; otherwise half its normalised
  payoff (VDN lands on a miscoordinated action in the climbing game: relative overgeneralisation).
- `dead_get_no_credit` (tasks with an alive flag): a dead agent's action changes nothing, so its credit
  dQ_tot/dQ_i should be zero. Score 1 - min(1, mean |credit| of dead agents / mean |credit| of the
  living ones), on recorded rollout states with mixed deaths when given, else on card-range states
  with a random subset killed.
- `all_agents_credited` (every task): in a cooperative team every agent matters somewhere, so no agent
  may be ignored: score min(1, 4 N * the smallest agent's mean share of |credit|) (VDN scores 1).

`state_columns` lists the global-state columns Q_tot depends on (nonzero dQ_tot/ds somewhere), used by
the `uses_feature:<name>` goal.

    >>> from tfcaf.tasks.registry import get_card
    >>> from tfcaf.sandbox.graph import FORMAT
    >>> vdn = {"format": FORMAT, "inputs": ["agents_q", "global_state"], "constants": {},
    ...        "nodes": [{"name": "s", "op": "aten.sum.dim_IntList", "args": [{"ref": "agents_q"}, [-1], True], "kwargs": {}}],
    ...        "output": {"ref": "s"}}
    >>> m = measure_graph(vdn, get_card("matrix_climbing"))
    >>> m["micro"]["matrix_optimum"] < 1, m["micro"]["all_agents_credited"]
    (True, 1.0)
"""

from __future__ import annotations

import math
from typing import Any, Callable, Sequence

from tfcaf.states import uniform_states

FIT_STEPS = 300
"""Adam steps of the matrix-game fit."""
FIT_LR = 0.1


def _payoff(card: Any) -> Sequence[Sequence[float]] | None:
    if getattr(card, "family", None) != "matrix":
        return None
    from tfcaf.tasks.matrix import PAYOFFS

    return PAYOFFS.get(card.name)


def matrix_optimum(fn: Callable, card: Any, payoff: Sequence[Sequence[float]]) -> float:
    """Known answer: the payoff's best joint action. See the module docstring."""
    import torch

    table = torch.tensor(payoff, dtype=torch.float32)  # [A, A]
    a = table.shape[0]
    gen = torch.Generator().manual_seed(0)
    utils = (torch.randn(card.n_agents, a, generator=gen) * 0.1).requires_grad_(True)  # [N, A]
    joint = torch.cartesian_prod(torch.arange(a), torch.arange(a))  # [A*A, 2]
    target = table[joint[:, 0], joint[:, 1]].unsqueeze(1)  # [A*A, 1]
    state = torch.tensor(card.state_low, dtype=torch.float32).clamp(-1e3, 1e3).expand(joint.shape[0], card.state_dim)
    opt = torch.optim.Adam([utils], lr=FIT_LR)
    for _ in range(FIT_STEPS):
        q = torch.stack([utils[0][joint[:, 0]], utils[1][joint[:, 1]]], dim=1)  # [A*A, 2]
        loss = ((fn(q, state) - target) ** 2).mean()
        if not bool(torch.isfinite(loss)):
            return 0.0
        opt.zero_grad()
        loss.backward()
        opt.step()
    greedy = utils.detach().argmax(dim=1)  # [N]
    got, best, worst = float(table[greedy[0], greedy[1]]), float(table.max()), float(table.min())
    if got >= best:
        return 1.0
    return 0.5 * (got - worst) / (best - worst) if best > worst else 0.0


def _credit(fn: Callable, q: Any, s: Any) -> Any:
    import torch

    qg = q.detach().clone().requires_grad_(True)
    out = fn(qg, s)
    (grad,) = torch.autograd.grad(out.sum(), qg, allow_unused=True)
    return torch.zeros_like(q) if grad is None else grad.abs()  # [B, N]


def _dead_states(card: Any, real: Any, gen: Any) -> tuple[Any, Any]:
    """(states [B, S], alive [B, N] bool) with some agents dead and some alive in every row."""
    import torch

    cols, thr = list(card.alive.columns), card.alive.threshold
    if real is not None and len(real):
        alive = real[:, cols] > thr
        mixed = alive.any(dim=1) & (~alive).any(dim=1)
        if int(mixed.sum()) >= 8:
            return real[mixed], alive[mixed]
    s = uniform_states(card, 128, gen)  # [128, S]
    dead = torch.rand(128, len(cols), generator=gen) < 0.5
    dead[:, 0] = True
    dead[:, -1] = False
    low = torch.tensor(card.state_low, dtype=torch.float32)
    high = torch.tensor(card.state_high, dtype=torch.float32)
    for i, c in enumerate(cols):
        dead_value = float(max(low[c].item(), min(thr, high[c].item())))
        s[:, c] = torch.where(dead[:, i], torch.full_like(s[:, c], dead_value), s[:, c])
    return s, ~dead


def dead_get_no_credit(fn: Callable, card: Any, real: Any = None) -> float:
    import torch

    gen = torch.Generator().manual_seed(1)
    s, alive = _dead_states(card, real, gen)
    q = torch.randn(s.shape[0], card.n_agents, generator=gen) * 10.0
    g = _credit(fn, q, s)  # [B, N]
    dead_mean = float(g[~alive].mean()) if bool((~alive).any()) else 0.0
    alive_mean = float(g[alive].mean()) if bool(alive.any()) else 0.0
    if not math.isfinite(dead_mean) or not math.isfinite(alive_mean):
        return 0.0
    if alive_mean <= 0.0:
        return 0.0
    return 1.0 - min(1.0, dead_mean / alive_mean)


def _live_states(card: Any, real: Any, gen: Any) -> Any:
    if real is not None and len(real):
        if card.alive is not None:
            alive = real[:, list(card.alive.columns)] > card.alive.threshold
            rows = real[alive.all(dim=1)]
            if len(rows) >= 8:
                return rows
        return real
    return uniform_states(card, 128, gen)


def all_agents_credited(fn: Callable, card: Any, real: Any = None) -> float:
    import torch

    gen = torch.Generator().manual_seed(2)
    s = _live_states(card, real, gen)
    q = torch.randn(s.shape[0], card.n_agents, generator=gen) * 10.0
    g = _credit(fn, q, s)  # [B, N]
    total = g.sum(dim=1, keepdim=True)  # [B, 1]
    share = torch.where(total > 0, g / total.clamp_min(1e-12), torch.zeros_like(g)).mean(dim=0)  # [N]
    if not bool(torch.isfinite(share).all()):
        return 0.0
    return min(1.0, float(share.min()) * 4 * card.n_agents)


def state_columns(fn: Callable, card: Any, real: Any = None) -> list[int]:
    """Columns of global_state that Q_tot depends on (nonzero |dQ_tot/ds| on some tested row)."""
    import torch

    gen = torch.Generator().manual_seed(3)
    s = _live_states(card, real, gen)
    if card.alive is not None:
        s = torch.cat([s, _dead_states(card, real, gen)[0]])
    s = s.detach().clone().requires_grad_(True)
    q = torch.randn(s.shape[0], card.n_agents, generator=gen) * 10.0
    (grad,) = torch.autograd.grad(fn(q, s).sum(), s, allow_unused=True)
    if grad is None:
        return []
    used = (grad.abs() > 0).any(dim=0) & torch.isfinite(grad).all(dim=0)  # [S]
    return [int(i) for i in used.nonzero().reshape(-1).tolist()]


def run_checks(fn: Callable, card: Any, real: Any = None) -> dict[str, Any]:
    """{'micro': {check: score}, 'micro_score': mean, 'state_columns': [...]} for a callable fn(q, s)."""
    checks: dict[str, float] = {}
    payoff = _payoff(card)
    if payoff is not None and card.n_agents == 2:
        checks["matrix_optimum"] = _safe(matrix_optimum, fn, card, payoff)
    if card.alive is not None:
        checks["dead_get_no_credit"] = _safe(dead_get_no_credit, fn, card, real)
    checks["all_agents_credited"] = _safe(all_agents_credited, fn, card, real)
    try:
        columns = state_columns(fn, card, real)
    except Exception:  # noqa: BLE001 - a graph that fails here simply uses no column we can see
        columns = []
    checks = {k: round(v, 6) for k, v in checks.items()}
    return {"micro": checks, "micro_score": round(sum(checks.values()) / len(checks), 6), "state_columns": columns}


def _safe(check: Callable, *args: Any) -> float:
    try:
        value = float(check(*args))
    except Exception:  # noqa: BLE001 - a rebuilt graph that raises on a micro-task scores 0 on it
        return 0.0
    return value if math.isfinite(value) else 0.0


def measure_graph(graph: dict, card: Any, real_states: Any = None) -> dict[str, Any]:
    """Rebuild `graph` in this (trusted) process and run every applicable micro-task on it.

    `real_states` ([M, S] array or list of rows) are recorded rollout states, when available."""
    import torch

    from tfcaf.sandbox.graph import load_graph

    module = load_graph(graph)
    real = None
    if real_states is not None and len(real_states):
        real = torch.as_tensor(real_states, dtype=torch.float32).reshape(-1, card.state_dim)
    return run_checks(module, card, real)
