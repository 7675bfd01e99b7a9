"""Layer 2 alone: the AST allow-list."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tfcaf.sandbox.astgate import check_module
from tfcaf.sandbox.verdict import Rejection

HEAD = "def QLLMNetwork(agents_q, global_state):\n"
RET = "    return agents_q.sum(-1, keepdim=True)\n"


def test_imports_are_removed_and_bound() -> None:
    gate = check_module("import torch\nimport torch.nn.functional as F\nfrom math import sqrt as s\nimport torch.nn as nn\n" + HEAD + "    import math\n"
                        "    y = torch.relu(F.relu(agents_q)) * s(math.pi) + nn.functional.relu(agents_q)\n" + RET)
    assert gate.bindings == {"torch": "torch", "F": "torch.nn.functional", "s": "math.sqrt", "nn": "torch.nn", "math": "math"}
    assert gate.functions == ("QLLMNetwork",)
    import ast

    assert not any(isinstance(n, (ast.Import, ast.ImportFrom)) for n in ast.walk(gate.tree))


def test_helpers_constants_and_docstring_allowed() -> None:
    gate = check_module('"""doc"""\nEPS = 1e-6\nW = (1.0, 2.0)\ndef helper(x, k=2):\n    return x * k\n' + HEAD + "    return helper(agents_q).sum(-1, keepdim=True) + EPS\n")
    assert set(gate.functions) == {"helper", "QLLMNetwork"}


@pytest.mark.parametrize("src,status,needle", [
    ("import numpy as np\n" + HEAD + RET, "static", "numpy"),
    ("import os\n" + HEAD + RET, "escape", "'os'"),
    ("from torch import nn as x, os\n" + HEAD + RET, "escape", "os"),
    (HEAD + "    x = agents_q.__class__\n" + RET, "escape", "dunder"),
    (HEAD + "    x = agents_q._version\n" + RET, "static", "underscore"),
    (HEAD + "    while True:\n        pass\n" + RET, "static", "While"),
    (HEAD + "    for i in range(5000):\n        pass\n" + RET, "static", "bounded"),
    (HEAD + "    x = agents_q.item()\n" + RET, "static", "item"),
    (HEAD + "    for i in range(" + "9" * 200 + "):\n        pass\n" + RET, "static", "bounded"),
    (HEAD + "    x = agents_q.tolist()\n" + RET, "static", "tolist"),
    (HEAD + "    agents_q.mul_(2)\n" + RET, "static", "in-place"),
    (HEAD + "    agents_q[0] = 1\n" + RET, "static", "in-place write"),
    (HEAD + "    global_state[:, 0] += 1\n" + RET, "static", "in-place write"),
    (HEAD + "    x = torch.rand(3)\n" + RET, "static", "random"),
    (HEAD + "    x = F.dropout(agents_q)\n" + RET, "static", "random"),
    ("def QLLMNetwork(agents_q, global_state, extra):\n" + RET, "static", "exactly two"),
    ("def QLLMNetwork(agents_q, global_state=None):\n" + RET, "static", "no defaults"),
    ("def QLLMNetwork(*args):\n" + RET, "static", "no defaults"),
    ("def helper(x, c=[]):\n    return x\n" + HEAD + RET, "static", "constants"),
    ("def f(x):\n    return f(x)\n" + HEAD + RET, "static", "recursion"),
    (HEAD + "    def inner(x):\n        return x\n" + RET, "static", "nested"),
    ("print('hi')\n" + HEAD + RET, "static", "module-level"),
    ("X = len([1])\n" + HEAD + RET, "static", "no calls"),
    ("def other(a, b):\n" + RET, "static", "no function named"),
    (HEAD + "    f = lambda x: x\n" + RET, "static", "Lambda"),
    (HEAD + "    s = f'{agents_q}'\n" + RET, "static", "f-strings"),
    (HEAD + "    x = eval('1')\n" + RET, "escape", "eval"),
    (HEAD + "    x = agents_q.grad_fn\n" + RET, "escape", "grad_fn"),
    ("import torch\n" + HEAD + "    torch.hub.load('a', 'b')\n" + RET, "escape", "leads outside"),
])
def test_rejections(src: str, status: str, needle: str) -> None:
    with pytest.raises(Rejection) as info:
        check_module(src)
    assert info.value.status == status, info.value.reason
    assert info.value.stage == "ast"
    assert needle in info.value.reason


@settings(max_examples=150)
@given(st.text(alphabet=st.characters(min_codepoint=9, max_codepoint=126), max_size=200))
def test_fuzz_random_source_never_crashes(src: str) -> None:
    try:
        check_module(src)
    except Rejection as rej:
        assert rej.status in ("static", "escape")


@settings(max_examples=150)
@given(st.data())
def test_fuzz_mutated_valid_source(data) -> None:
    src = "import torch\n" + HEAD + "    w = torch.softmax(global_state[:, :1], dim=-1)\n    return (w * agents_q).sum(-1, keepdim=True)\n"
    i = data.draw(st.integers(0, len(src) - 1))
    j = data.draw(st.integers(i, min(len(src), i + 8)))
    junk = data.draw(st.text(alphabet="_.()[]:\n xyz01", max_size=6))
    try:
        check_module(src[:i] + junk + src[j:])
    except Rejection as rej:
        assert rej.reason


def test_annotations_are_stripped_and_asserts_allowed() -> None:
    import ast

    gate = check_module("import torch\ndef QLLMNetwork(agents_q: torch.Tensor, global_state: torch.Tensor) -> torch.Tensor:\n"
                        "    assert agents_q.dim() == 2\n    n: int = agents_q.shape[1]\n    k: float\n" + RET)
    fn = next(n for n in gate.tree.body if isinstance(n, ast.FunctionDef))
    assert fn.returns is None and all(a.annotation is None for a in fn.args.args)
    assert not any(isinstance(n, ast.AnnAssign) for n in ast.walk(gate.tree))
    assert any(isinstance(n, ast.Assert) for n in ast.walk(gate.tree))


# -- style is not a gate (issue 12): accepted idioms, with every escape rule as strict as before -----

def _names(gate) -> set[str]:
    import ast as _ast

    return {n.id for n in _ast.walk(gate.tree) if isinstance(n, _ast.Name)} | \
        {f.name for f in gate.tree.body if isinstance(f, _ast.FunctionDef)}


def test_underscore_locals_helpers_and_throwaway_are_renamed_not_refused():
    gate = check_module("def _helper(x, _scale=1.0):\n    return x * _scale\n\n"
                        "def QLLMNetwork(agents_q, global_state):\n    _eps = 1e-6\n    for _ in range(2):\n        _eps = _eps * 1.0\n"
                        "    return _helper(agents_q, _scale=2.0).sum(-1, keepdim=True) + _eps\n")
    assert not [n for n in _names(gate) if n.startswith("_")]
    assert "tfcaf_private_helper" in gate.functions


def test_renaming_never_collides_and_guards_stay_unreachable():
    gate = check_module("def QLLMNetwork(agents_q, global_state):\n    tfcaf_private_x = 1.0\n    _x = 2.0\n"
                        "    _getattr_ = 3.0\n    return agents_q.sum(-1, keepdim=True) * _x * tfcaf_private_x * _getattr_\n")
    names = _names(gate)
    assert "_getattr_" not in names and "tfcaf_private_getattr_" in names
    assert "tfcaf_private_x" in names and "tfcaf_private1_x" in names


@pytest.mark.parametrize("code,status", [
    ("def QLLMNetwork(agents_q, global_state):\n    return agents_q._data.sum(-1, keepdim=True)\n", "static"),
    ("def QLLMNetwork(agents_q, global_state):\n    return agents_q.__class__\n", "escape"),
    ("def QLLMNetwork(agents_q, global_state):\n    assert True, f'{agents_q.__class__.__subclasses__()}'\n    return agents_q\n", "escape"),
    ("def QLLMNetwork(agents_q, global_state):\n    assert True, f'{eval(1)}'\n    return agents_q\n", "escape"),
    ("def QLLMNetwork(agents_q, global_state):\n    s = f'{agents_q}'\n    return agents_q\n", "static"),
    ("import torch as __builtins__\ndef QLLMNetwork(agents_q, global_state):\n    return agents_q\n", "escape"),
    ("from torch import _C\ndef QLLMNetwork(agents_q, global_state):\n    return agents_q\n", "escape"),
    ("def QLLMNetwork(agents_q, global_state):\n    return agents_q.sum(-1, keepdim=True, _stacklevel=2)\n", "static"),
])
def test_escape_rules_stay_strict(code, status):
    with pytest.raises(Rejection) as info:
        check_module(code)
    assert info.value.status == status, info.value.reason


def test_fstring_assert_messages_are_dropped_before_execution():
    import ast as _ast

    gate = check_module("def QLLMNetwork(agents_q, global_state):\n    assert agents_q.dim() == 2, f'bad {agents_q.shape}'\n"
                        "    assert True, 'kept'\n    return agents_q.sum(-1, keepdim=True)\n")
    asserts = [n for n in _ast.walk(gate.tree) if isinstance(n, _ast.Assert)]
    assert asserts[0].msg is None and isinstance(asserts[1].msg, _ast.Constant)
    assert not [n for n in _ast.walk(gate.tree) if isinstance(n, _ast.JoinedStr)]


def test_missing_import_torch_is_supplied_but_never_overrides_the_module():
    gate = check_module("def QLLMNetwork(agents_q, global_state):\n    return torch.sum(agents_q, dim=1, keepdim=True)\n")
    assert gate.bindings == {"torch": "torch"}
    gate = check_module("torch = 2.0\ndef QLLMNetwork(agents_q, global_state):\n    return agents_q.sum(-1, keepdim=True) * torch\n")
    assert "torch" not in gate.bindings
    gate = check_module("import torch.nn.functional as F\nfrom torch import Tensor\n"
                        "def QLLMNetwork(agents_q: Tensor, global_state: Tensor) -> Tensor:\n    return agents_q.sum(-1, keepdim=True)\n")
    assert gate.bindings == {}  # only used in (stripped) annotations, or not at all
