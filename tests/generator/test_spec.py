"""Spec mode: parsing, clamping, schema and rendering into QLLMNetwork source."""

from __future__ import annotations

import json

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from tfcaf.generator.spec import LIMITS, SpecError, parse_spec, render_spec, spec_schema
from tfcaf.tasks.registry import get_card

SMAC = get_card("smac_3m")
MATRIX = get_card("matrix_climbing")


def _exec(source: str):
    namespace: dict = {}
    exec(compile(source, "<spec>", "exec"), namespace)  # our own rendered text, in a test
    return namespace["QLLMNetwork"]


def test_clamps_huge_numbers_and_drops_unknown_features():
    spec = parse_spec(json.dumps({"weights": {"health": 3.6e6, "bogus": 1.0}, "temperature": 0.0,
                                  "vdn_blend": -2, "mask_dead": True}), SMAC)
    assert spec.weights == {"health": LIMITS["weight"][1]}
    assert spec.temperature == LIMITS["temperature"][0] and spec.vdn_blend == 0.0
    assert any("bogus" in n for n in spec.notes) and any("clamped" in n for n in spec.notes)


@pytest.mark.parametrize("text, reason", [
    ("", "empty"),
    ('{"weights": {}, "temperature": 1', "not valid JSON"),
    ("[1, 2]", "JSON object"),
    ('{"weights": {}, "vdn_blend": 0.5}', "temperature"),
    ('{"weights": {"health": "big"}, "temperature": 1, "vdn_blend": 0}', "must be a number"),
    ('{"weights": {}, "temperature": 1, "vdn_blend": 0, "mask_dead": "yes"}', "mask_dead"),
    ('```json\n{}\n```\n```json\n{}\n```', "2 fenced blocks"),
])
def test_unusable_answers_are_rejected_with_a_reason(text, reason):
    with pytest.raises(SpecError, match=reason):
        parse_spec(text, SMAC)


def test_fenced_json_is_accepted():
    spec = parse_spec('Here:\n```json\n{"weights": {}, "temperature": 2, "vdn_blend": 1}\n```', MATRIX)
    assert spec.temperature == 2.0 and spec.vdn_blend == 1.0


def test_schema_requires_every_feature_and_bounds_the_object():
    schema = spec_schema(SMAC)
    assert schema["properties"]["weights"]["required"] == [f.name for f in SMAC.features]
    assert schema["additionalProperties"] is False and "mask_dead" in schema["required"]
    assert "mask_dead" not in spec_schema(MATRIX)["properties"]


@given(weights=st.lists(st.floats(-1e9, 1e9), min_size=10, max_size=10), temperature=st.floats(-10, 100),
       blend=st.floats(-5, 5), mask=st.booleans())
def test_rendered_source_is_monotone_finite_and_shaped(weights, temperature, blend, mask):
    names = [f.name for f in SMAC.features]
    spec = parse_spec(json.dumps({"weights": dict(zip(names, weights)), "temperature": temperature,
                                  "vdn_blend": blend, "mask_dead": mask}), SMAC)
    fn = _exec(render_spec(spec, SMAC))
    gen = torch.Generator().manual_seed(0)
    low, high = torch.tensor(SMAC.state_low), torch.tensor(SMAC.state_high)
    state = low + (high - low) * torch.rand(16, SMAC.state_dim, generator=gen)
    state[0, :3] = 0.0  # every agent dead
    q = (torch.rand(16, 3, generator=gen) - 0.5) * 2e3
    q.requires_grad_(True)
    out = fn(q, state)
    assert out.shape == (16, 1) and torch.isfinite(out).all()
    (grad,) = torch.autograd.grad(out.sum(), q)
    assert (grad >= 0).all() and torch.isfinite(grad).all() and grad.abs().sum() > 0


def test_vdn_blend_one_is_vdn():
    fn = _exec(render_spec(parse_spec('{"weights": {"health": 2}, "temperature": 1, "vdn_blend": 1, "mask_dead": false}', SMAC), SMAC))
    q, s = torch.randn(5, 3), torch.rand(5, SMAC.state_dim)
    assert torch.allclose(fn(q, s), q.sum(1, keepdim=True), atol=1e-5)


def test_mask_dead_gives_dead_agents_zero_credit():
    fn = _exec(render_spec(parse_spec('{"weights": {}, "temperature": 1, "vdn_blend": 0.5, "mask_dead": true}', SMAC), SMAC))
    s = torch.rand(1, SMAC.state_dim)
    s[0, 1] = 0.0  # agent 1 dead
    q = torch.zeros(1, 3, requires_grad=True)
    (grad,) = torch.autograd.grad(fn(q, s).sum(), q)
    assert grad[0, 1] == 0 and grad[0, 0] > 0


def test_unbounded_feature_ranges_render_runnable_source():
    """VMAS cards have features in [0, inf): the render must not write `inf` (a NameError at run time)."""
    card = get_card("vmas_simple_spread")
    weights = {f.name: 1.0 for f in card.features}
    source = render_spec(parse_spec(json.dumps({"weights": weights, "temperature": 1, "vdn_blend": 0.2}), card), card)
    assert "inf" not in source.replace("import", "")
    fn = _exec(source)
    state = torch.rand(4, card.state_dim)
    out = fn(torch.randn(4, card.n_agents), state)
    assert out.shape == (4, 1) and torch.isfinite(out).all()
