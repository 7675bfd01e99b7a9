"""The property suite in-process on trusted functions: each gate rejects what it should, soft metrics
measure what they claim. (In production the suite runs inside the sandbox worker.)"""

from __future__ import annotations

import pytest
import torch

from tfcaf.evaluator.properties import PropertyOptions, Sampler, run_properties
from tfcaf.sandbox.verdict import Rejection
from tfcaf.tasks.card import AliveFlag, StateSlice, TaskCard
from tfcaf.tasks.registry import TASKS, get_card

FAST = PropertyOptions(examples=8)


def _card(requires_igm: bool = True, low: float = 0.0, high: float = 1.0) -> TaskCard:
    return TaskCard(name="toy", family="toy", backend="test", n_agents=3, state_dim=5, obs_dim=1, n_actions=2,
                    episode_limit=10, action_meanings=("a", "b"), reward="r", description="d",
                    state_slices=(StateSlice("health", 0, 3, "health", 0.0, 1.0, per_agent=True),
                                  StateSlice("other", 3, 5, "x", low, high)),
                    alive=AliveFlag((0, 1, 2)), requires_igm=requires_igm)


def _vdn(q, s):
    return q.sum(dim=-1, keepdim=True)


def _fails(fn, card=None, prop: str | None = None, status: str = "property") -> Rejection:
    with pytest.raises(Rejection) as info:
        run_properties(fn, card or _card(), FAST)
    assert info.value.status == status, info.value.reason
    if prop:
        assert f"'{prop}'" in info.value.reason, info.value.reason
    return info.value


@pytest.mark.parametrize("name", list(TASKS))
def test_vdn_passes_on_every_registered_task(name: str) -> None:
    m = run_properties(_vdn, get_card(name), PropertyOptions(examples=3))
    assert m["vdn_distance"] == 0.0 and m["mono_min_grad"] == 1.0


def test_gates() -> None:
    _fails(lambda q, s: -_vdn(q, s), prop="igm_monotone")
    _fails(lambda q, s: _vdn(q, s) * float("nan"), prop="finite_output")
    _fails(lambda q, s: _vdn(q, s) + torch.sqrt(q - q).sum(-1, keepdim=True), prop="finite_gradient")
    _fails(lambda q, s: torch.zeros_like(q[:, :1]), prop="gradient")
    _fails(lambda q, s: _vdn(q, s) * 0.0 + s[:, :1], prop="nonzero_gradient")
    _fails(lambda q, s: _vdn(q, s) * 1e6, prop="bounded_scale")
    _fails(lambda q, s: _vdn(q, s) - _vdn(q, s).mean(), prop="batch_independence")
    _fails(lambda q, s: _vdn(q, s) + torch.rand(q.shape[0], 1), prop="deterministic")
    _fails(lambda q, s: q.sum(-1), status="contract")
    _fails(lambda q, s: _vdn(q, s).double(), status="contract")

    def mutates(q, s):
        s[:, 0] = 0.0
        return _vdn(q, s)

    _fails(mutates, prop="inputs_not_mutated")


def test_counterexample_is_the_failing_row() -> None:
    rej = _fails(lambda q, s: _vdn(q, s) - 2.0 * q[:, 1:2], prop="igm_monotone")
    row = rej.counterexample["row"]
    assert row["grad"][1] == pytest.approx(-1.0) and len(row["global_state"]) == 5
    assert "dQ_tot/dQ_1" in rej.reason


def test_igm_not_required_allows_non_monotone() -> None:
    m = run_properties(lambda q, s: (torch.softmax(q, -1) * q).sum(-1, keepdim=True), _card(requires_igm=False), FAST)
    assert m["mono_min_grad"] < 0


def test_production_time_gate() -> None:
    slow = PropertyOptions(examples=2, max_forward_ms=0.0)
    with pytest.raises(Rejection, match="production_time"):
        run_properties(_vdn, _card(), slow)


def test_soft_metrics() -> None:
    masked = lambda q, s: ((s[:, :3] > 0).float() * q).sum(-1, keepdim=True)  # noqa: E731 - dead agents get no credit
    m_mask = run_properties(masked, _card(), FAST)
    m_vdn = run_properties(_vdn, _card(), FAST)
    assert m_mask["dead_agent_credit"] == 0.0
    assert m_vdn["dead_agent_credit"] == pytest.approx(1.0)
    assert m_vdn["state_dependence"] == 0.0
    weighted = lambda q, s: (torch.softmax(s[:, :3] * 4, -1) * 3 * q).sum(-1, keepdim=True)  # noqa: E731
    m_w = run_properties(weighted, _card(), FAST)
    assert m_w["state_dependence"] > 0.05 and m_w["vdn_distance"] > 0.0
    assert m_vdn["production_ms"] >= 0 and m_vdn["property_batches"] > 10


def test_sampler_clamps_infinite_bounds_and_kills_agents() -> None:
    card = _card(low=float("-inf"), high=float("inf"))
    sampler = Sampler(card, PropertyOptions(state_bound=50.0))
    gen = torch.Generator().manual_seed(0)
    s = sampler.states(gen, 200, "uniform")
    assert torch.isfinite(s).all() and s[:, 3:].abs().max() <= 50.0
    dead = sampler.states(gen, 10, "dead_all")
    assert not sampler.alive_mask(dead).any()
    assert sampler.agents_q(gen, 10, "large", 1.0).abs().max() == PropertyOptions().q_bound


def test_real_states_are_used() -> None:
    real = torch.full((20, 5), 0.25)
    seen = []

    def spy(q, s):
        seen.append(bool((s == 0.25).all()))
        return _vdn(q, s)

    run_properties(spy, _card(), FAST, real_states=real)
    assert any(seen)


def test_dtype_follows_the_inputs() -> None:
    rej = _fails(lambda q, s: q.float().sum(-1, keepdim=True), status="contract")
    assert "float64" in rej.reason or "dtype" in rej.reason


def test_sparse_masks_are_not_mistaken_for_ignoring_q() -> None:
    # Credit only where a state feature is high: zero gradient in many rows, but not everywhere.
    sparse = lambda q, s: (torch.relu(s[:, 3:4] - 0.8) * q).sum(-1, keepdim=True)  # noqa: E731
    m = run_properties(sparse, _card(), PropertyOptions(examples=20))
    assert m["mono_min_grad"] == 0.0
