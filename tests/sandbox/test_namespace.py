"""Layer 3 alone: RestrictedPython + the type-aware guard + allow-listed namespaces, with the AST gate
bypassed (a raw parse), so each attack must be stopped by this layer by itself."""

from __future__ import annotations

import ast

import pytest
import torch

from tfcaf.sandbox.astgate import GateResult
from tfcaf.sandbox.namespace import BlockedAttribute, Namespace, build_namespaces, guarded_getattr, load_candidate
from tfcaf.sandbox.verdict import Rejection

Q, S = torch.randn(4, 3), torch.rand(4, 5)


def raw(src: str, **bindings: str) -> GateResult:
    """No AST gate: just parse (imports stay in the code)."""
    return GateResult(ast.parse(src), dict(bindings or {"torch": "torch"}), ())


def run(src: str, **bindings: str):
    return load_candidate(raw(src, **bindings))(Q.clone(), S.clone())


def test_valid_function_runs_with_tensor_methods_and_scalar_clamp() -> None:
    out = run("def QLLMNetwork(agents_q, global_state):\n"
              "    w = torch.softmax(global_state[:, :3], dim=-1)\n"
              "    x = agents_q.clamp_min(0.0)\n"  # torch's C++ imports torch through the frame's builtins
              "    x += 1.0\n"
              "    return (w * x).sum(dim=-1, keepdim=True)\n")
    assert out.shape == (4, 1)


def test_augmented_assignment_never_mutates_the_input() -> None:
    q = Q.clone()
    fn = load_candidate(raw("def QLLMNetwork(agents_q, global_state):\n    a = agents_q\n    a += 1.0\n    return a.sum(-1, keepdim=True)\n"))
    fn(q, S)
    assert torch.equal(q, Q)


@pytest.mark.parametrize("src", [
    "def QLLMNetwork(a, s):\n    return ().__class__.__bases__[0].__subclasses__()\n",
    "def QLLMNetwork(a, s):\n    return a.__class__\n",
    "def QLLMNetwork(a, s):\n    return getattr(a, '__class__')\n",
    "def QLLMNetwork(a, s):\n    return __import__('os')\n",
])
def test_restricted_python_refuses_dunders(src: str) -> None:
    with pytest.raises((Rejection, NameError, BlockedAttribute, KeyError)):
        run(src)


@pytest.mark.parametrize("attr", ["os", "sys", "builtins", "ctypes", "load", "save", "from_file", "ops", "hub", "jit",
                                  "utils", "_C", "Tensor", "rand", "manual_seed", "library", "backends"])
def test_torch_namespace_has_no_dangerous_members(attr: str) -> None:
    with pytest.raises((BlockedAttribute, AttributeError)):
        guarded_getattr(build_namespaces()["torch"], attr)


@pytest.mark.parametrize("src,escape", [
    ("def QLLMNetwork(a, s):\n    return torch.os\n", True),
    ("def QLLMNetwork(a, s):\n    return torch.builtins.eval('1')\n", True),
    ("def QLLMNetwork(a, s):\n    return a.numpy()\n", True),
    ("def QLLMNetwork(a, s):\n    return a.grad_fn\n", True),
    ("def QLLMNetwork(a, s):\n    return '{0}'.format(a)\n", True),
    ("def QLLMNetwork(a, s):\n    return a.item()\n", False),
    ("def QLLMNetwork(a, s):\n    return a.add_(1)\n", False),
    ("def QLLMNetwork(a, s):\n    return a.storage\n", True),
    ("def QLLMNetwork(a, s):\n    return torch.sum.__self__\n", True),
    ("def QLLMNetwork(a, s):\n    f = torch.sum\n    return f.__module__\n", True),
])
def test_guard_blocks_attributes(src: str, escape: bool) -> None:
    with pytest.raises((BlockedAttribute, Rejection)) as info:
        run(src)
    if isinstance(info.value, BlockedAttribute):
        assert info.value.escape == escape


def test_no_dangerous_builtins() -> None:
    for name in ("open", "eval", "exec", "compile", "getattr", "type", "globals", "vars", "input"):
        with pytest.raises(NameError):
            run(f"def QLLMNetwork(a, s):\n    return {name}\n")


def test_import_statements_without_the_ast_gate_get_real_torch_only() -> None:
    # The safe __import__ exists for torch's C++ internals; with the gate it is unreachable. Even here, os is refused.
    with pytest.raises(ImportError):
        run("import os\ndef QLLMNetwork(a, s):\n    return a\n")


def test_namespaces_are_read_only_and_attribute_writes_refused() -> None:
    ns = build_namespaces()["torch"]
    with pytest.raises(AttributeError):
        ns.sum = None  # type: ignore[attr-defined]
    with pytest.raises(BlockedAttribute):
        run("def QLLMNetwork(a, s):\n    t = torch\n    t.sum = 1\n    return a\n")
    with pytest.raises(BlockedAttribute):
        run("def QLLMNetwork(a, s):\n    a.foo = 1\n    return a\n")
    assert isinstance(ns, Namespace)


def test_range_is_bounded_at_run_time() -> None:
    with pytest.raises(ValueError, match="bounded"):
        run("def QLLMNetwork(a, s):\n    for i in range(a.shape[1] * 10000):\n        pass\n    return a\n")


def test_prints_are_discarded(capsys) -> None:
    run("def QLLMNetwork(a, s):\n    print('leak')\n    return a.sum(-1, keepdim=True)\n")
    assert "leak" not in capsys.readouterr().out


def test_max_values_and_list_methods_allowed() -> None:
    out = run("def QLLMNetwork(a, s):\n    xs = []\n    xs.append(a.max(dim=1, keepdim=True).values)\n    return xs[0]\n")
    assert out.shape == (4, 1)
