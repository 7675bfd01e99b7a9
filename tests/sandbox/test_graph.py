"""The graph format alone: export of trusted functions, JSON round trip, and the trusted rebuild's
allow-list and validation (malformed or hostile graph data is rejected, never executed)."""

from __future__ import annotations

import copy
import json

import pytest
import torch

from tfcaf.errors import RejectedError
from tfcaf.sandbox.export import export_graph
from tfcaf.sandbox.graph import FORMAT, canonical_json, graph_digest, load_graph
from tfcaf.sandbox.verdict import Rejection


def _vdn(q, s):
    return q.sum(dim=-1, keepdim=True)


def _weighted(q, s):
    w = torch.softmax(s[:, :3] * torch.tensor([1.0, 2.0, 3.0]), dim=-1) * 3.0  # [B, 3]
    z = torch.zeros_like(q)
    z[:, 0] = 1.0  # in-place on a local tensor: functionalised by export
    best = q.max(dim=1, keepdim=True).values
    return (w * q + z).sum(dim=-1, keepdim=True) + 0.1 * best + s[:, :1].clamp(min=float("-inf"), max=1e9) * 0.0


@pytest.fixture(scope="module")
def weighted_graph() -> dict:
    return json.loads(json.dumps(export_graph(_weighted, 3, 5)))


def test_export_round_trip_matches_eager(weighted_graph: dict) -> None:
    g = load_graph(weighted_graph)
    for b in (1, 2, 7, 3200):
        q, s = torch.randn(b, 3), torch.rand(b, 5)
        torch.testing.assert_close(g(q, s), _weighted(q, s))
    q, s = torch.randn(4, 25, 3), torch.rand(4, 25, 5)
    assert g(q, s).shape == (4, 25, 1)


def test_graph_is_plain_json_with_constants(weighted_graph: dict) -> None:
    assert weighted_graph["format"] == FORMAT
    assert weighted_graph["constants"], "the tensor literal is lifted to a constant"
    text = canonical_json(weighted_graph)
    assert "NaN" not in text and "Infinity" not in text
    assert all(n["op"].startswith(("aten.", "operator.")) for n in weighted_graph["nodes"])


def test_gradients_flow_through_the_rebuilt_graph() -> None:
    g = load_graph(export_graph(_vdn, 3, 5))
    q = torch.randn(6, 3, requires_grad=True)
    g(q, torch.rand(6, 5)).sum().backward()
    assert torch.equal(q.grad, torch.ones(6, 3))


def test_digest_is_canonical() -> None:
    data = export_graph(_vdn, 2, 1)
    shuffled = json.loads(json.dumps(data))
    shuffled = dict(reversed(list(shuffled.items())))
    assert graph_digest(shuffled) == graph_digest(data)
    changed = copy.deepcopy(data)
    changed["nodes"][0]["args"][1] = [0]
    assert graph_digest(changed) != graph_digest(data)


def test_data_dependent_branch_is_an_export_rejection() -> None:
    def branchy(q, s):
        if bool((q > 0).all()):
            return q.sum(-1, keepdim=True)
        return -q.sum(-1, keepdim=True)

    with pytest.raises(Rejection) as info:
        export_graph(branchy, 2, 1)
    assert info.value.status == "export"


def _base() -> dict:
    return {"format": FORMAT, "inputs": ["agents_q", "global_state"], "constants": {},
            "nodes": [{"name": "s", "op": "aten.sum.dim_IntList", "args": [{"ref": "agents_q"}, [-1], True], "kwargs": {}}],
            "output": {"ref": "s"}}


@pytest.mark.parametrize("mutate,needle", [
    (lambda g: g["nodes"].__setitem__(0, {**g["nodes"][0], "op": "aten.rand.default"}), "allow-list"),
    (lambda g: g["nodes"].__setitem__(0, {**g["nodes"][0], "op": "builtins.eval"}), "allow-list"),
    (lambda g: g["nodes"].__setitem__(0, {**g["nodes"][0], "op": "aten.add_.Tensor"}), "allow-list"),
    (lambda g: g["nodes"].__setitem__(0, {**g["nodes"][0], "op": "aten.sum"}), "allow-list"),
    (lambda g: g.__setitem__("format", "pickle"), "format"),
    (lambda g: g.__setitem__("inputs", ["x"]), "inputs"),
    (lambda g: g.__setitem__("output", {"ref": "nope"}), "output"),
    (lambda g: g["nodes"][0]["args"].__setitem__(0, {"ref": "later"}), "undefined"),
    (lambda g: g["nodes"][0]["args"].__setitem__(0, {"const": "c9"}), "undefined"),
    (lambda g: g["nodes"][0]["args"].__setitem__(1, {"py": "os.system"}), "tag"),
    (lambda g: g["nodes"][0]["args"].__setitem__(1, float("nan")), "non-finite"),
    (lambda g: g["nodes"][0]["args"].__setitem__(1, {"dtype": "object"}), "dtype"),
    (lambda g: g["nodes"].append(dict(g["nodes"][0])), "twice"),
    (lambda g: g.__setitem__("constants", {"c0": {"dtype": "float32", "shape": [2], "data": [1.0]}}), "values"),
    (lambda g: g.__setitem__("constants", {"c0": {"dtype": "float32", "shape": [10 ** 9], "data": []}}), "too large"),
    (lambda g: g.__setitem__("constants", {"c0": {"dtype": "float32", "shape": [1], "data": ["x"]}}), "non-numbers"),
    (lambda g: g.__setitem__("nodes", "rm -rf"), "nodes"),
])
def test_load_graph_rejects_bad_data(mutate, needle: str) -> None:
    g = _base()
    mutate(g)
    with pytest.raises(RejectedError, match=needle):
        load_graph(g)


def test_tagged_floats_and_device_literals() -> None:
    g = _base()
    g["nodes"].append({"name": "z", "op": "aten.zeros_like.default", "args": [{"ref": "s"}],
                       "kwargs": {"device": {"device": "cuda"}, "dtype": {"dtype": "float32"}}})
    g["nodes"].append({"name": "m", "op": "aten.clamp.default", "args": [{"ref": "s"}, {"float": "-inf"}, 5.0], "kwargs": {}})
    g["nodes"].append({"name": "o", "op": "aten.add.Tensor", "args": [{"ref": "m"}, {"ref": "z"}], "kwargs": {}})
    g["output"] = {"ref": "o"}
    out = load_graph(g)(torch.ones(3, 4) * 2, torch.zeros(3, 1))  # the cuda literal follows the input's device
    assert out.tolist() == [[5.0]] * 3


@pytest.mark.cuda
def test_graph_runs_on_cuda(weighted_graph: dict) -> None:
    g = load_graph(weighted_graph, device="cuda")
    q, s = torch.randn(3200, 3), torch.rand(3200, 5)
    torch.testing.assert_close(g(q.cuda(), s.cuda()).cpu(), _weighted(q, s), rtol=1e-4, atol=1e-4)


def test_assertion_only_nodes_are_dropped_from_the_program() -> None:
    g = _base()
    g["nodes"] = [{"name": "neg", "op": "aten.lt.Scalar", "args": [{"ref": "agents_q"}, 0.0], "kwargs": {}},
                  {"name": "anyneg", "op": "aten.any.default", "args": [{"ref": "neg"}], "kwargs": {}},
                  {"name": "chk", "op": "aten._assert_async.msg", "args": [{"ref": "anyneg"}, "msg"], "kwargs": {}}] + g["nodes"]
    module = load_graph(g)
    assert module.n_nodes == 1
    assert module(torch.ones(2, 3), torch.zeros(2, 1)).tolist() == [[3.0], [3.0]]


@pytest.mark.parametrize("fn", [
    lambda q, s: q.sum(-1, keepdim=True) * (q.new_ones(q.shape[0], 1).sum(0, keepdim=True) > 1000).float(),
    lambda q, s: q.sum(-1, keepdim=True) - q.mean(),
    lambda q, s: q.sum(-1, keepdim=True) / q.reshape(-1).abs().max(),
])
def test_batch_coupling_is_found_in_the_graph_structure(fn) -> None:
    with pytest.raises(Rejection) as info:
        export_graph(fn, 3, 5)
    assert info.value.status == "property" and "batch_independence" in info.value.reason


def test_batch_dimension_moving_is_fine() -> None:
    def stacked(q, s):
        cols = torch.stack([q[:, i] * torch.sigmoid(s[:, i]) for i in range(3)], dim=0)  # [N, B]
        return cols.sum(dim=0).unsqueeze(-1) + q.reshape(-1).reshape(q.shape[0], 3)[:, :1] * 0.0

    g = load_graph(export_graph(stacked, 3, 5))
    q, s = torch.randn(9, 3), torch.rand(9, 5)
    torch.testing.assert_close(g(q, s), stacked(q, s))
