"""Layer 3, restricted execution: RestrictedPython with a type-aware attribute guard and
allow-listed namespaces standing in for torch, torch.nn, torch.nn.functional and math.

The raw `torch` module is never handed in (it exposes `torch.os`, `torch.sys`, `torch.builtins`).
Covers: attribute access on every object the code can reach (namespaces, tensors, sizes, dtypes,
lists, tuples, dicts, numbers; nothing else), builtins (a small pure set), in-place augmented
assignment (rewritten out of place), item and attribute writes (only on tensors and local lists/dicts
the code created... and only by subscript), `range` bounded. Does not cover: CPU time and memory (the
worker's limits), C-level bugs in torch kernels, and numerics.
"""

from __future__ import annotations

import math
import operator
from types import MappingProxyType
from typing import Any, Callable

from RestrictedPython import compile_restricted
from RestrictedPython.Guards import guarded_iter_unpack_sequence, guarded_unpack_sequence

from tfcaf.contract import ENTRY_POINT
from tfcaf.sandbox.astgate import ESCAPE_NAMES, MAX_RANGE, GateResult
from tfcaf.sandbox.verdict import Rejection

TORCH_FUNCTIONS = (
    "abs", "acos", "asin", "atan", "atan2", "add", "sub", "mul", "div", "true_divide", "neg", "reciprocal",
    "exp", "exp2", "expm1", "log", "log2", "log10", "log1p", "sqrt", "rsqrt", "square", "pow", "sin", "cos",
    "tan", "sinh", "cosh", "tanh", "sigmoid", "relu", "softmax", "log_softmax", "logsumexp", "sign", "floor",
    "ceil", "round", "trunc", "frac", "clamp", "clip", "clamp_min", "clamp_max", "maximum", "minimum", "fmax",
    "fmin", "where", "lerp", "erf", "erfc", "hypot", "sum", "mean", "prod", "std", "var", "amax", "amin",
    "max", "min", "argmax", "argmin", "cumsum", "cumprod", "norm", "dist", "stack", "cat", "concat",
    "concatenate", "hstack", "vstack", "reshape", "squeeze", "unsqueeze", "transpose", "permute", "flatten",
    "gather", "index_select", "masked_fill", "narrow", "chunk", "split", "unbind", "broadcast_to", "expand_copy",
    "matmul", "mm", "bmm", "einsum", "outer", "dot", "tensor", "as_tensor", "zeros", "ones", "full", "arange",
    "linspace", "eye", "zeros_like", "ones_like", "full_like", "eq", "ne", "gt", "ge", "lt", "le", "isfinite",
    "isnan", "isinf", "logical_and", "logical_or", "logical_not", "logical_xor", "nan_to_num", "any", "all",
    "count_nonzero", "diag", "tril", "triu", "roll", "flip", "tile", "repeat_interleave", "sort", "topk",
    "heaviside", "softplus", "logaddexp", "xlogy", "sinc", "deg2rad", "rad2deg", "mean", "nansum",
    "is_tensor", "numel", "sgn", "float_power", "fmod", "remainder", "floor_divide", "cosine_similarity",
    "finfo",
)
TORCH_VALUES = ("float32", "float64", "float16", "bfloat16", "float", "double", "half", "int64", "int32",
                "long", "int", "bool", "uint8", "pi", "e", "inf", "nan")
FUNCTIONAL = ("softmax", "log_softmax", "softmin", "relu", "relu6", "leaky_relu", "elu", "selu", "celu", "gelu",
              "silu", "mish", "softplus", "softsign", "sigmoid", "tanh", "hardtanh", "hardsigmoid", "hardswish",
              "logsigmoid", "tanhshrink", "normalize", "one_hot", "cosine_similarity", "pad", "threshold")
MATH = ("pi", "e", "inf", "nan", "tau", "sqrt", "exp", "log", "log1p", "log2", "log10", "expm1", "tanh", "sin",
        "cos", "tan", "atan", "atan2", "floor", "ceil", "fabs", "isfinite", "isnan", "isinf", "pow", "hypot",
        "erf", "sigmoid_free_placeholder")

TENSOR_ATTRS = frozenset(set(TORCH_FUNCTIONS) - {"tensor", "as_tensor", "zeros", "ones", "full", "arange",
                                                  "linspace", "eye", "is_tensor", "stack", "cat", "concat",
                                                  "concatenate", "hstack", "vstack", "einsum", "finfo"}) | {
    "shape", "dtype", "device", "ndim", "T", "mT", "size", "dim", "view", "view_as", "reshape_as", "expand",
    "expand_as", "repeat", "contiguous", "clone", "detach", "to", "float", "double", "half", "long", "int",
    "bool", "type_as", "new_zeros", "new_ones", "new_full", "new_tensor", "is_floating_point",
    "softmax", "log_softmax", "abs", "exp", "unflatten", "select", "masked_fill", "nelement", "numel",
    "logical_not", "square", "sigmoid", "relu", "tanh", "mean", "sum", "max", "min", "clamp", "values",
    "indices", "is_cuda", "detach", "sqrt", "pow", "log", "neg", "sign",
}
"""Tensor attributes and methods a candidate may use (no in-place, no scalar extraction, no storage)."""

_SAFE_TYPE_ATTRS: dict[type, frozenset[str]] = {
    list: frozenset({"append", "extend", "index", "count", "insert", "pop", "copy", "reverse"}),
    tuple: frozenset({"index", "count"}),
    dict: frozenset({"get", "items", "keys", "values", "copy"}),
    float: frozenset({"real", "is_integer"}),
    int: frozenset({"real"}),
}


class Namespace:
    """An allow-listed stand-in for a module: only the listed members exist."""

    __slots__ = ("_name", "_members")

    def __init__(self, name: str, members: dict[str, Any]) -> None:
        object.__setattr__(self, "_name", name)
        object.__setattr__(self, "_members", MappingProxyType(dict(members)))

    def member(self, attr: str) -> Any:
        try:
            return self._members[attr]
        except KeyError:
            raise AttributeError(f"'{self._name}.{attr}' is not available in the sandbox") from None

    def __setattr__(self, key: str, value: Any) -> None:
        raise AttributeError("namespaces are read-only")

    def __repr__(self) -> str:
        return f"<sandbox namespace {self._name}>"


def _pick(module: Any, names: tuple[str, ...]) -> dict[str, Any]:
    return {n: getattr(module, n) for n in names if hasattr(module, n)}


def build_namespaces() -> dict[str, Namespace]:
    """'torch', 'torch.nn', 'torch.nn.functional', 'math' -> allow-listed namespaces."""
    import torch
    import torch.nn.functional as F

    functional = Namespace("torch.nn.functional", _pick(F, FUNCTIONAL))
    nn = Namespace("torch.nn", {"functional": functional})
    torch_ns = Namespace("torch", {**_pick(torch, TORCH_FUNCTIONS), **_pick(torch, TORCH_VALUES), "nn": nn,
                                   "Tensor": None, "Size": None})
    torch_ns = Namespace("torch", {k: v for k, v in torch_ns._members.items() if v is not None})
    math_ns = Namespace("math", _pick(math, MATH))
    return {"torch": torch_ns, "torch.nn": nn, "torch.nn.functional": functional, "math": math_ns}


class BlockedAttribute(Exception):
    """A guarded attribute access was refused; `escape` says whether it looks like an escape attempt."""

    def __init__(self, message: str, escape: bool) -> None:
        super().__init__(message)
        self.escape = escape


def guarded_getattr(obj: Any, name: str, default: Any = None, *args: Any) -> Any:
    """RestrictedPython's `_getattr_`: type-aware allow-list."""
    import torch

    if not isinstance(name, str) or name.startswith("_") or name in ESCAPE_NAMES:
        raise BlockedAttribute(f"attribute '{name}' is not allowed: it leads outside the sandbox", escape=True)
    if isinstance(obj, Namespace):
        return obj.member(name)
    if isinstance(obj, torch.Tensor):
        if name in TENSOR_ATTRS:
            return getattr(obj, name)
        raise BlockedAttribute(f"tensor attribute '.{name}' is not available in the sandbox", escape=False)
    if type(obj).__module__ == "torch.return_types" and name in ("values", "indices"):  # max/min/sort/topk results
        return getattr(obj, name)
    if isinstance(obj, torch.finfo) and name in ("eps", "tiny", "max", "min", "resolution", "bits", "smallest_normal"):
        return getattr(obj, name)
    if isinstance(obj, torch.Size) and name in ("numel",):
        return getattr(obj, name)
    if isinstance(obj, torch.dtype) and name in ("is_floating_point", "itemsize"):
        return getattr(obj, name)
    if isinstance(obj, torch.device) and name in ("type", "index"):
        return getattr(obj, name)
    for typ, allowed in _SAFE_TYPE_ATTRS.items():
        if type(obj) is typ and name in allowed:
            return getattr(obj, name)
    raise BlockedAttribute(f"attribute '.{name}' of a {type(obj).__name__} is not available in the sandbox", escape=False)


def _getitem(obj: Any, key: Any) -> Any:
    return obj[key]


def _write(obj: Any) -> Any:
    """`_write_`: subscript writes only into tensors, lists and dicts (attribute writes are refused)."""
    import torch

    if isinstance(obj, (torch.Tensor, list, dict)):
        return _SubscriptOnly(obj)
    raise BlockedAttribute(f"writing into a {type(obj).__name__} is not allowed", escape=True)


class _SubscriptOnly:
    __slots__ = ("_obj",)

    def __init__(self, obj: Any) -> None:
        object.__setattr__(self, "_obj", obj)

    def __setitem__(self, key: Any, value: Any) -> None:
        self._obj[key] = value

    def __delitem__(self, key: Any) -> None:
        del self._obj[key]

    def __setattr__(self, key: str, value: Any) -> None:
        raise BlockedAttribute("attribute writes are not allowed", escape=True)


_INPLACE = {"+=": operator.add, "-=": operator.sub, "*=": operator.mul, "/=": operator.truediv,
            "//=": operator.floordiv, "%=": operator.mod, "**=": operator.pow, "@=": operator.matmul,
            "&=": operator.and_, "|=": operator.or_, "^=": operator.xor, "<<=": operator.lshift, ">>=": operator.rshift}


def _inplacevar(op: str, x: Any, y: Any) -> Any:
    """`x op= y` computed out of place, so a tensor argument is never mutated."""
    return _INPLACE[op](x, y)


def bounded_range(*args: int) -> range:
    r = range(*args)
    if len(r) > MAX_RANGE:
        raise ValueError(f"range(...) is bounded to {MAX_RANGE} iterations")
    return r


def _import_for_torch_internals(name: str, globals: Any = None, locals: Any = None, fromlist: Any = (), level: int = 0) -> Any:
    # torch's C++ imports `torch` through the calling frame's builtins (e.g. Tensor.clamp_min(scalar)).
    # Import statements never reach this: the AST gate rejects or removes every one of them.
    if name == "torch" and level == 0:
        import torch

        return torch
    raise ImportError(f"import of '{name}' is not allowed")


SAFE_BUILTINS = {
    "abs": abs, "min": min, "max": max, "sum": sum, "len": len, "range": bounded_range, "enumerate": enumerate,
    "zip": zip, "float": float, "int": int, "bool": bool, "round": round, "list": list, "tuple": tuple,
    "dict": dict, "reversed": reversed, "sorted": sorted, "any": any, "all": all, "isinstance": None,
    "True": True, "False": False, "None": None, "divmod": divmod, "pow": pow,
    "ValueError": ValueError, "ZeroDivisionError": ZeroDivisionError,
}
SAFE_BUILTINS = {k: v for k, v in SAFE_BUILTINS.items() if v is not None or k == "None"}


class _DiscardPrints:
    """`_print_` collector: candidate prints go nowhere."""

    def __init__(self, _getattr_: Any = None) -> None:
        pass

    def write(self, text: str) -> None:
        pass

    def __call__(self) -> str:
        return ""

    def _call_print(self, *objects: Any, **kwargs: Any) -> None:
        pass


def restricted_globals(bindings: dict[str, str], namespaces: dict[str, Namespace] | None = None) -> dict[str, Any]:
    """Fresh globals for one candidate: guards, safe builtins, and its imports bound to namespaces."""
    namespaces = namespaces or build_namespaces()
    builtins = dict(SAFE_BUILTINS)
    builtins["__import__"] = _import_for_torch_internals
    g: dict[str, Any] = {
        "__builtins__": builtins, "__name__": "candidate", "_getattr_": guarded_getattr, "_getitem_": _getitem,
        "_getiter_": iter, "_iter_unpack_sequence_": guarded_iter_unpack_sequence,
        "_unpack_sequence_": guarded_unpack_sequence, "_write_": _write, "_inplacevar_": _inplacevar,
        "_print_": _DiscardPrints,
    }
    for alias, path in bindings.items():
        if path in namespaces:
            g[alias] = namespaces[path]
            continue
        module, _, member = path.rpartition(".")
        g[alias] = namespaces[module].member(member)
    return g


def compile_candidate(gate: GateResult) -> Any:
    """RestrictedPython-compile the gated module; Rejection('restricted') on a policy error."""
    import warnings

    try:
        with warnings.catch_warnings():  # e.g. "Prints, but never reads 'printed'": prints are discarded anyway
            warnings.simplefilter("ignore", SyntaxWarning)
            result = compile_restricted(gate.tree, filename="<candidate>", mode="exec")
    except SyntaxError as err:
        raise Rejection("restricted", "restricted", f"RestrictedPython refused the code: {err}") from None
    return result


def load_candidate(gate: GateResult, namespaces: dict[str, Namespace] | None = None) -> Callable[..., Any]:
    """Compile and execute the module in restricted globals; returns its QLLMNetwork.

    Run this only inside the worker process: module-level code executes here.
    """
    code = compile_candidate(gate)
    g = restricted_globals(gate.bindings, namespaces)
    exec(code, g)  # noqa: S102 - restricted code, restricted globals, inside the worker
    fn = g.get(ENTRY_POINT)
    if not callable(fn):
        raise Rejection("static", "restricted", f"{ENTRY_POINT} is not a function after running the module")
    return fn
