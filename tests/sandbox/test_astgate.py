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
    gate = check_module("import torch\nimport torch.nn.functional as F\nfrom math import sqrt as s\nimport torch.nn as nn\n" + HEAD + "    import math\n" + RET)
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
