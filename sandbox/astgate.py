"""Layer 2, the AST gate: an allow-list of syntax, imports and names, checked before anything runs.

Covers: node types (no classes, lambdas, generators, try/with, while, global/nonlocal, f-strings
outside assert messages, decorators, nested functions), imports (only torch, torch.nn,
torch.nn.functional, math; they are removed from the code and bound to safe namespaces; `torch` is
bound when the code uses it without an import, as QLLM's frame does), dunder names and underscore
attributes (underscore *local* names such as `_helper` or `_` are fine: they are renamed before
RestrictedPython, which refuses them), names and attributes
known to lead out of the sandbox (frames, builtins, os, code loading), recursion, bounded `range`,
the entry point's signature, `.item()` / `.tolist()` / random sampling / in-place ops.
Does not cover: values (huge integers, memory bombs: the worker's limits), attribute access on
computed objects (RestrictedPython's type-aware guard), numerics (property tests).
"""

from __future__ import annotations

import ast
from dataclasses import dataclass, field

from tfcaf.contract import ENTRY_POINT
from tfcaf.sandbox.verdict import Rejection

ALLOWED_NODES = (
    ast.Module, ast.FunctionDef, ast.arguments, ast.arg, ast.Return, ast.Assign, ast.AugAssign,
    ast.AnnAssign, ast.Expr, ast.If, ast.For, ast.Break, ast.Continue, ast.Pass, ast.Import,
    ast.ImportFrom, ast.alias, ast.Name, ast.Load, ast.Store, ast.Del, ast.Constant, ast.Attribute,
    ast.Call, ast.keyword, ast.BinOp, ast.UnaryOp, ast.BoolOp, ast.Compare, ast.IfExp, ast.Subscript,
    ast.Slice, ast.Tuple, ast.List, ast.Dict, ast.ListComp, ast.comprehension, ast.Starred, ast.Assert,
    ast.operator, ast.unaryop, ast.boolop, ast.cmpop, ast.expr_context,
)

ALLOWED_IMPORTS = {"torch": "torch", "torch.nn": "torch.nn", "torch.nn.functional": "torch.nn.functional", "math": "math"}
"""Module name -> namespace key (see namespace.py)."""

ESCAPE_NAMES = frozenset({
    "eval", "exec", "compile", "open", "getattr", "setattr", "delattr", "hasattr", "globals", "locals",
    "vars", "dir", "type", "object", "super", "breakpoint", "input", "memoryview", "help", "exit", "quit",
    "os", "sys", "builtins", "ctypes", "subprocess", "importlib", "socket", "shutil", "pathlib", "pickle",
    "marshal", "signal", "inspect", "gc", "threading", "multiprocessing", "io", "codecs", "runpy",
    "gi_frame", "gi_code", "gi_yieldfrom", "cr_frame", "ag_frame", "f_back", "f_globals", "f_locals",
    "f_builtins", "f_code", "tb_frame", "tb_next", "co_code", "func_globals", "format", "format_map",
    "load", "save", "from_file", "from_numpy", "numpy", "storage", "untyped_storage", "data_ptr",
    "hub", "jit", "ops", "library", "utils", "classes", "_C", "cuda", "backends", "distributed",
    "register_hook", "apply_", "map_", "grad_fn", "next_functions", "tofile", "to_dlpack", "from_dlpack",
})
"""Names and attributes that only serve to leave the sandbox or touch the system: status 'escape'."""

ESCAPE_BUILTINS = frozenset({
    "eval", "exec", "compile", "open", "getattr", "setattr", "delattr", "hasattr", "globals", "locals",
    "vars", "dir", "type", "object", "super", "breakpoint", "input", "memoryview", "help", "exit", "quit",
    "os", "sys", "builtins", "ctypes", "subprocess", "importlib", "socket", "pickle", "marshal", "gc",
    "inspect", "classmethod", "staticmethod", "property", "chr", "ord", "bytes", "bytearray",
    "iter", "next", "id", "hash", "callable", "issubclass", "repr", "ascii", "format",
})
"""Bare names (builtins and system modules) that only serve to leave the sandbox: status 'escape'."""

IMPORT_ESCAPES = frozenset({
    "os", "sys", "subprocess", "ctypes", "builtins", "importlib", "socket", "shutil", "pathlib", "pickle",
    "marshal", "io", "codecs", "runpy", "signal", "threading", "multiprocessing", "gc", "inspect", "urllib",
    "http", "requests", "pty", "posix", "tempfile", "glob", "code", "types", "platform", "resource", "mmap",
})
"""Modules whose import is an escape attempt (other unknown imports are merely 'static')."""

RANDOM_NAMES = frozenset({
    "rand", "randn", "randint", "rand_like", "randn_like", "randint_like", "randperm", "bernoulli",
    "multinomial", "normal", "poisson", "manual_seed", "seed", "initial_seed", "dropout", "dropout1d",
    "dropout2d", "alpha_dropout", "feature_alpha_dropout", "random", "uniform", "gumbel_softmax",
    "exponential_", "geometric_", "cauchy_", "log_normal_", "empty", "empty_like", "empty_strided",
})
NO_SCALAR_NAMES = frozenset({"item", "tolist", "numpy", "cpu_numpy", "__bool__"})
INPLACE_OK = frozenset()  # every trailing-underscore method is in-place in torch

MAX_RANGE = 1024


@dataclass
class GateResult:
    """What the AST gate learned: the cleaned module (imports removed) and the bindings they asked for."""

    tree: ast.Module
    bindings: dict[str, str] = field(default_factory=dict)
    """Global name -> dotted path in the safe namespace ('torch', 'torch.nn.functional', 'math.sqrt')."""
    functions: tuple[str, ...] = ()


def _static(reason: str, node: ast.AST | None = None) -> Rejection:
    where = f" (line {node.lineno})" if node is not None and hasattr(node, "lineno") else ""
    return Rejection("static", "ast", reason + where)


def _escape(reason: str, node: ast.AST | None = None) -> Rejection:
    where = f" (line {node.lineno})" if node is not None and hasattr(node, "lineno") else ""
    return Rejection("escape", "ast", reason + where)


def _check_name(name: str, node: ast.AST, what: str, allow_private: bool = False) -> None:
    if name.startswith("__") or name.endswith("__"):
        raise _escape(f"dunder {what} '{name}' is not allowed", node)
    if name in (ESCAPE_NAMES if what != "name" else ESCAPE_BUILTINS):
        raise _escape(f"{what} '{name}' is not allowed: it leads outside the sandbox", node)
    if name.startswith("_") and not allow_private:
        raise _static(f"{what} '{name}' starts with '_': underscore attributes and imported names are not allowed", node)
    if name in RANDOM_NAMES:
        raise _static(f"'{name}' is random sampling: a credit function must be deterministic", node)


def _check_import(node: ast.Import | ast.ImportFrom, bindings: dict[str, str]) -> None:
    if isinstance(node, ast.Import):
        for alias in node.names:
            if alias.name not in ALLOWED_IMPORTS:
                root = alias.name.split(".")[0]
                maker = _escape if root in IMPORT_ESCAPES else _static
                raise maker(f"import of '{alias.name}' is not allowed (allowed: torch, torch.nn, torch.nn.functional, math)", node)
            if alias.asname:
                _check_name(alias.asname, node, "import alias", allow_private=True)
                bindings[alias.asname] = alias.name
            else:
                bindings[alias.name.split(".")[0]] = alias.name.split(".")[0]
        return
    if node.level:
        raise _static("relative imports are not allowed", node)
    module = node.module or ""
    if module not in ALLOWED_IMPORTS:
        root = module.split(".")[0]
        maker = _escape if root in IMPORT_ESCAPES else _static
        raise maker(f"import from '{module}' is not allowed (allowed: torch, torch.nn, torch.nn.functional, math)", node)
    for alias in node.names:
        if alias.name == "*":
            raise _static("'from ... import *' is not allowed", node)
        _check_name(alias.name, node, "imported name")
        if alias.asname:
            _check_name(alias.asname, node, "import alias", allow_private=True)
        bindings[alias.asname or alias.name] = f"{module}.{alias.name}"


def _check_entry(fn: ast.FunctionDef) -> None:
    args = fn.args
    if args.vararg or args.kwarg or args.kwonlyargs or args.posonlyargs or args.defaults:
        raise _static(f"{ENTRY_POINT} must take exactly (agents_q, global_state): no defaults, *args, **kwargs or keyword-only parameters", fn)
    if len(args.args) != 2:
        raise _static(f"{ENTRY_POINT} must take exactly two parameters (agents_q, global_state), got {len(args.args)}", fn)


def _inputs_mutated(fn: ast.FunctionDef) -> None:
    params = {a.arg for a in fn.args.args}
    for node in ast.walk(fn):
        targets: list[ast.expr] = []
        if isinstance(node, (ast.Assign,)):
            targets = list(node.targets)
        elif isinstance(node, (ast.AugAssign, ast.AnnAssign)):
            targets = [node.target]
        for t in targets:
            for sub in ast.walk(t):
                if isinstance(sub, (ast.Subscript, ast.Attribute)) and isinstance(sub.value, ast.Name) and sub.value.id in params:
                    raise _static(f"in-place write to the input '{sub.value.id}' is not allowed: compute a new tensor instead", node)


def _check_calls(tree: ast.Module, functions: set[str]) -> None:
    graph: dict[str, set[str]] = {}
    for fn in tree.body:
        if isinstance(fn, ast.FunctionDef):
            graph[fn.name] = {n.func.id for n in ast.walk(fn) if isinstance(n, ast.Call) and isinstance(n.func, ast.Name) and n.func.id in functions}
    seen: set[str] = set()
    stack: set[str] = set()

    def visit(name: str) -> None:
        if name in stack:
            raise _static(f"recursion is not allowed (function '{name}' calls itself)")
        if name in seen:
            return
        stack.add(name)
        for callee in graph.get(name, ()):
            visit(callee)
        stack.discard(name)
        seen.add(name)

    for name in graph:
        visit(name)


def _check_range(node: ast.Call) -> None:
    consts = [a.value for a in node.args if isinstance(a, ast.Constant) and isinstance(a.value, int)]
    if len(consts) == len(node.args) and node.args:
        vals = consts + [1] * (3 - len(consts))
        start, stop, step = (0, vals[0], 1) if len(node.args) == 1 else (vals[0], vals[1], vals[2] if len(node.args) == 3 else 1)
        try:
            too_long = step == 0 or len(range(start, stop, step)) > MAX_RANGE
        except OverflowError:
            too_long = True
        if too_long:
            raise _static(f"range(...) is bounded to {MAX_RANGE} iterations", node)


def check_module(source: str) -> GateResult:
    """Run the AST gate on an extracted source; returns the module with imports removed.

    Raises `Rejection` with status 'static' (not allowed) or 'escape' (an escape attempt).
    """
    try:
        tree = ast.parse(source)
    except (SyntaxError, ValueError, RecursionError, MemoryError) as err:
        raise _static(f"the code does not parse: {err}") from None
    bindings: dict[str, str] = {}
    # f-strings are allowed only as assert messages (LLMs write them there); they are dropped below,
    # after their names and attributes went through every check like the rest of the code
    in_messages = {id(n) for a in ast.walk(tree) if isinstance(a, ast.Assert) and a.msg is not None for n in ast.walk(a.msg)}
    params = {a.arg for f in ast.walk(tree) if isinstance(f, ast.FunctionDef) for a in f.args.args + f.args.kwonlyargs}
    for node in ast.walk(tree):
        if isinstance(node, (ast.JoinedStr, ast.FormattedValue)) and id(node) in in_messages:
            continue
        if not isinstance(node, ALLOWED_NODES):
            raise _static(f"{type(node).__name__} is not allowed{_HINTS.get(type(node).__name__, '')}", node)
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            _check_import(node, bindings)
        elif isinstance(node, ast.Name):
            _check_name(node.id, node, "name", allow_private=True)
        elif isinstance(node, ast.Attribute):
            _check_name(node.attr, node, "attribute")
            if node.attr in NO_SCALAR_NAMES:
                raise _static(f"'.{node.attr}()' is not allowed: keep everything as tensors (no Python scalars from tensors)", node)
            if node.attr.endswith("_") and not node.attr.endswith("__"):
                raise _static(f"in-place method '.{node.attr}' is not allowed: use the out-of-place form '.{node.attr[:-1]}'", node)
        elif isinstance(node, ast.arg):
            _check_name(node.arg, node, "parameter", allow_private=True)
        elif isinstance(node, ast.keyword) and node.arg is not None:
            _check_name(node.arg, node, "keyword", allow_private=node.arg in params)
        elif isinstance(node, ast.FunctionDef):
            _check_name(node.name, node, "function name", allow_private=True)
            if node.decorator_list:
                raise _static("decorators are not allowed", node)
            for default in node.args.defaults + [d for d in node.args.kw_defaults if d is not None]:
                if not isinstance(default, ast.Constant):
                    raise _static(f"default values must be constants (function '{node.name}')", node)
        elif isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "range":
            _check_range(node)
        elif isinstance(node, ast.Constant) and isinstance(node.value, (bytes,)):
            raise _static("bytes literals are not allowed", node)
    functions: list[str] = []
    body: list[ast.stmt] = []
    for stmt in tree.body:
        if isinstance(stmt, (ast.Import, ast.ImportFrom)):
            continue
        if isinstance(stmt, ast.FunctionDef):
            for inner in ast.walk(stmt):
                if inner is not stmt and isinstance(inner, ast.FunctionDef):
                    raise _static("nested functions are not allowed: define helpers at the top level", inner)
            functions.append(stmt.name)
        elif isinstance(stmt, (ast.Assign, ast.AnnAssign)):
            if any(isinstance(n, ast.Call) for n in ast.walk(stmt)):
                raise _static("module-level code may only define constants (no calls outside functions)", stmt)
        elif isinstance(stmt, ast.Expr) and isinstance(stmt.value, ast.Constant) and isinstance(stmt.value.value, str):
            pass  # a docstring
        else:
            raise _static(f"module-level {type(stmt).__name__} is not allowed: only imports, constants and function definitions", stmt)
        body.append(stmt)
    if len(set(functions)) != len(functions):
        raise _static("a function is defined twice")
    entries = [s for s in body if isinstance(s, ast.FunctionDef) and s.name == ENTRY_POINT]
    if not entries:
        raise _static(f"no function named {ENTRY_POINT}(agents_q, global_state) defined")
    _check_entry(entries[0])
    _inputs_mutated(entries[0])
    _check_calls(tree, set(functions))
    for stmt in body:  # imports inside functions: removed, bound globally
        for node in ast.walk(stmt):
            for field_name in ("body", "orelse"):
                block = getattr(node, field_name, None)
                if isinstance(block, list) and any(isinstance(s, (ast.Import, ast.ImportFrom)) for s in block):
                    kept = [s for s in block if not isinstance(s, (ast.Import, ast.ImportFrom))]
                    setattr(node, field_name, kept or [ast.Pass()])
    for stmt in body:
        _strip_annotations(stmt)
    clean = ast.Module(body=body, type_ignores=[])
    ast.fix_missing_locations(clean)
    for name in bindings:
        if name in functions:
            raise _static(f"'{name}' is both imported and defined")
    _drop_formatted_messages(clean)
    loaded = {n.id for n in ast.walk(clean) if isinstance(n, ast.Name)}
    bindings = {k: v for k, v in bindings.items() if k in loaded}  # e.g. `from torch import Tensor` used only in hints
    if "torch" not in bindings and _uses_free_torch(clean, functions):
        bindings["torch"] = "torch"  # QLLM's frame supplies torch; so do we (the same safe namespace as `import torch`)
    renames = _private_renames(clean, bindings)
    if renames:
        _apply_renames(clean, renames)
        bindings = {renames.get(k, k): v for k, v in bindings.items()}
        functions = [renames.get(f, f) for f in functions]
    ast.fix_missing_locations(clean)
    return GateResult(clean, bindings, tuple(functions))


def _drop_formatted_messages(tree: ast.AST) -> None:
    """`assert cond, f"..."` -> `assert cond`: the message is for a person reading a traceback, and an
    f-string would format (call __format__ on) computed objects inside the sandbox."""
    for node in ast.walk(tree):
        if isinstance(node, ast.Assert) and node.msg is not None and any(isinstance(n, ast.JoinedStr) for n in ast.walk(node.msg)):
            node.msg = None


def _uses_free_torch(tree: ast.Module, functions: list[str]) -> bool:
    """True when `torch` is read but never bound by the module (QLLM's published files have no import)."""
    used = any(isinstance(n, ast.Name) and n.id == "torch" and isinstance(n.ctx, ast.Load) for n in ast.walk(tree))
    bound = "torch" in functions or any(isinstance(n, ast.Name) and n.id == "torch" and isinstance(n.ctx, ast.Store)
                                        for stmt in tree.body if not isinstance(stmt, ast.FunctionDef) for n in ast.walk(stmt))
    return used and not bound


def _private_renames(tree: ast.Module, bindings: dict[str, str]) -> dict[str, str]:
    """Underscore names the gate let through (`_helper`, `_`, `_eps`) -> fresh plain names.

    RestrictedPython refuses every name that starts with '_' (its own guards are such names, e.g.
    `_getattr_`); renaming keeps that property exactly while accepting the way LLMs write helpers."""
    taken: set[str] = set(bindings)
    private: set[str] = set()
    for node in ast.walk(tree):
        for name in _names_of(node):
            taken.add(name)
            if name.startswith("_"):
                private.add(name)
    renames: dict[str, str] = {}
    for name in sorted(private):
        new, i = f"tfcaf_private{name}", 0
        while new in taken:
            i += 1
            new = f"tfcaf_private{i}{name}"
        taken.add(new)
        renames[name] = new
    return renames


def _names_of(node: ast.AST) -> list[str]:
    if isinstance(node, ast.Name):
        return [node.id]
    if isinstance(node, ast.arg):
        return [node.arg]
    if isinstance(node, ast.FunctionDef):
        return [node.name]
    if isinstance(node, ast.keyword) and node.arg is not None:
        return [node.arg]
    if isinstance(node, ast.Attribute):
        return [node.attr]
    return []


def _apply_renames(tree: ast.Module, renames: dict[str, str]) -> None:
    for node in ast.walk(tree):
        if isinstance(node, ast.Name) and node.id in renames:
            node.id = renames[node.id]
        elif isinstance(node, ast.arg) and node.arg in renames:
            node.arg = renames[node.arg]
        elif isinstance(node, ast.FunctionDef) and node.name in renames:
            node.name = renames[node.name]
        elif isinstance(node, ast.keyword) and node.arg in renames:
            node.arg = renames[node.arg]


def _strip_annotations(tree: ast.AST) -> None:
    """Drop type annotations (`agents_q: torch.Tensor`, `-> torch.Tensor`): they would be evaluated at
    definition time, and they change nothing about the function."""
    for node in ast.walk(tree):
        if isinstance(node, ast.FunctionDef):
            node.returns = None
            for a in node.args.args + node.args.posonlyargs + node.args.kwonlyargs:
                a.annotation = None
        for field_name in ("body", "orelse"):
            block = getattr(node, field_name, None)
            if isinstance(block, list):
                new = []
                for s in block:
                    if isinstance(s, ast.AnnAssign):
                        if s.value is None:
                            continue
                        s = ast.copy_location(ast.Assign(targets=[s.target], value=s.value), s)
                    new.append(s)
                setattr(node, field_name, new or [ast.Pass()])


_HINTS = {
    "While": ": use a bounded 'for i in range(n)' loop",
    "ClassDef": f": define a plain function {ENTRY_POINT}(agents_q, global_state)",
    "Lambda": ": define a top-level helper function instead",
    "GeneratorExp": ": use a list comprehension",
    "Global": "", "Nonlocal": "",
    "JoinedStr": " (f-strings) outside an assert message",
    "FormattedValue": " (f-strings) outside an assert message",
    "Try": ": let errors surface",
    "With": "",
}
