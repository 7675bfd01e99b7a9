"""The compiled form of an accepted credit function: a plain-data graph of allow-listed ATen ops.

Format (JSON, ``"format": "tfcaf-graph/1"``)::

    {"format": "tfcaf-graph/1", "n_agents": N, "state_dim": S,
     "inputs": ["agents_q", "global_state"],
     "constants": {"c0": {"dtype": "float32", "shape": [3], "data": [0.5, 0.25, 0.25]}},
     "nodes": [{"name": "mul", "op": "aten.mul.Tensor", "args": [{"ref": "agents_q"}, 2.0], "kwargs": {}}, ...],
     "output": {"ref": "sum_1"}}

Arguments are JSON numbers, booleans, null, strings, lists, or tagged objects: ``{"ref": node}``,
``{"const": name}``, ``{"float": "inf"|"-inf"|"nan"}``, ``{"dtype": ...}``, ``{"device": ...}``,
``{"layout": ...}``, ``{"memory_format": ...}``. `load_graph` rebuilds it in the trusted process by
interpreting the node list against a fixed allow-list of ATen overloads: no pickle, no candidate
Python. Device literals are replaced by the input's device at call time (the graph runs on CUDA).
"""

from __future__ import annotations

import hashlib
import json
import math
import operator
import re
from typing import Any

from tfcaf.errors import RejectedError

FORMAT = "tfcaf-graph/1"
MAX_NODES = 20_000
MAX_CONSTANT_ELEMENTS = 1_000_000

ALLOWED_OPS = frozenset("aten." + name for name in (
    # elementwise arithmetic and math
    "add.Tensor", "add.Scalar", "sub.Tensor", "sub.Scalar", "rsub.Tensor", "rsub.Scalar", "mul.Tensor",
    "mul.Scalar", "div.Tensor", "div.Scalar", "div.Tensor_mode", "div.Scalar_mode", "neg.default",
    "reciprocal.default", "pow.Tensor_Scalar", "pow.Tensor_Tensor", "pow.Scalar", "exp.default", "exp2.default",
    "expm1.default", "log.default", "log2.default", "log10.default", "log1p.default", "sqrt.default",
    "rsqrt.default", "abs.default", "sign.default", "sgn.default", "sin.default", "cos.default", "tan.default",
    "asin.default", "acos.default", "atan.default", "atan2.default", "sinh.default", "cosh.default",
    "tanh.default", "sigmoid.default", "relu.default", "erf.default", "erfc.default", "floor.default",
    "ceil.default", "round.default", "round.decimals", "trunc.default", "frac.default", "fmod.Tensor",
    "fmod.Scalar", "remainder.Tensor", "remainder.Scalar", "floor_divide.default", "hypot.default",
    "maximum.default", "minimum.default", "fmax.default", "fmin.default", "clamp.default", "clamp.Tensor",
    "clamp_min.default", "clamp_max.default", "clamp_min.Tensor", "clamp_max.Tensor", "lerp.Scalar",
    "lerp.Tensor", "where.self", "where.ScalarSelf", "where.ScalarOther", "where.Scalar", "square.default",
    "logaddexp.default", "xlogy.Tensor", "nan_to_num.default", "heaviside.default", "leaky_relu.default",
    "elu.default", "gelu.default", "silu.default", "softplus.default", "hardtanh.default", "mish.default",
    "log_sigmoid_forward.default", "hardsigmoid.default", "hardswish.default", "threshold.default",
    "celu.default", "selu.default", "relu6.default", "logit.default", "sinc.default", "float_power.Tensor_Scalar",
    "special_xlog1py.default", "copysign.Tensor", "signbit.default",
    # comparisons and logic
    "eq.Tensor", "eq.Scalar", "ne.Tensor", "ne.Scalar", "gt.Tensor", "gt.Scalar", "ge.Tensor", "ge.Scalar",
    "lt.Tensor", "lt.Scalar", "le.Tensor", "le.Scalar", "logical_and.default", "logical_or.default",
    "logical_not.default", "logical_xor.default", "bitwise_and.Tensor", "bitwise_or.Tensor",
    "bitwise_not.default", "bitwise_xor.Tensor", "isnan.default", "isinf.default", "isfinite.default",
    "isposinf.default", "isneginf.default", "any.default", "any.dim", "any.dims", "all.default", "all.dim",
    "all.dims", "masked_fill.Scalar", "masked_fill.Tensor",
    # reductions
    "sum.default", "sum.dim_IntList", "mean.default", "mean.dim", "prod.default", "prod.dim_int",
    "amax.default", "amin.default", "max.default", "min.default", "max.dim", "min.dim", "argmax.default",
    "argmin.default", "var.correction", "var.dim", "std.correction", "std.dim", "logsumexp.default",
    "cumsum.default", "cumprod.default", "norm.Scalar", "norm.ScalarOpt_dim", "linalg_vector_norm.default",
    "_softmax.default", "_log_softmax.default", "softmax.int", "log_softmax.int", "sort.default", "sort.stable",
    "topk.default", "count_nonzero.dim_IntList", "count_nonzero.default", "nansum.default",
    # shapes, views, indexing
    "view.default", "_unsafe_view.default", "reshape.default", "expand.default", "permute.default",
    "transpose.int", "t.default", "unsqueeze.default", "squeeze.default", "squeeze.dim", "squeeze.dims",
    "select.int", "slice.Tensor", "narrow.default", "cat.default", "stack.default", "split.Tensor",
    "split_with_sizes.default", "unbind.int", "chunk.default", "clone.default", "alias.default",
    "index.Tensor", "index_select.default", "gather.default", "flip.default", "roll.default", "repeat.default",
    "tile.default", "repeat_interleave.self_int", "expand_copy.default", "view_copy.default",
    "unflatten.int", "flatten.using_ints", "diagonal.default", "diag_embed.default", "tril.default",
    "triu.default", "slice_scatter.default", "select_scatter.default", "index_put.default",
    "constant_pad_nd.default", "lift_fresh_copy.default", "detach.default", "contiguous.default",
    "_to_copy.default", "to.dtype", "to.dtype_layout", "type_as.default", "one_hot.default",
    "copy.default", "fill.Scalar", "fill.Tensor", "masked_select.default",
    # linear algebra
    "mm.default", "bmm.default", "matmul.default", "mv.default", "dot.default", "outer.default",
    "einsum.default", "addmm.default", "baddbmm.default",
    # creation (deterministic)
    "zeros.default", "ones.default", "full.default", "zeros_like.default", "ones_like.default",
    "full_like.default", "scalar_tensor.default", "arange.default", "arange.start", "arange.start_step",
    "linspace.default", "eye.default", "eye.m", "new_zeros.default", "new_ones.default", "new_full.default",
    "empty.memory_format", "empty_like.default",
    # symbolic sizes
    "sym_size.int", "sym_numel.default",
))
"""ATen overloads a graph may contain. Deliberately excludes randomness, in-place and out= variants,
I/O, and anything that calls back into Python."""

NO_OP_OPS = frozenset({"aten._assert_tensor_metadata.default", "aten._assert_scalar.default", "aten._assert_async.msg", "aten._assert_async.default",
                       "aten.sym_constrain_range_for_size.default", "aten.sym_constrain_range.default"})
"""Assertions export may emit: accepted, skipped at run time."""

PYTHON_OPS = {"operator.getitem": operator.getitem, "operator.mul": operator.mul, "operator.add": operator.add,
              "operator.sub": operator.sub, "operator.floordiv": operator.floordiv, "operator.neg": operator.neg,
              "operator.truediv": operator.truediv, "operator.mod": operator.mod}
"""Python operators export uses on symbolic sizes and tuple outputs."""

DTYPES = ("float32", "float64", "float16", "bfloat16", "int64", "int32", "int16", "int8", "uint8", "bool")
LAYOUTS = ("strided",)
MEMORY_FORMATS = ("contiguous_format", "preserve_format")


def _bad(reason: str) -> RejectedError:
    return RejectedError(f"invalid graph: {reason}")


def canonical_json(data: dict) -> str:
    """Sorted keys, no spaces, no NaN literals: the form `graph_digest` hashes."""
    return json.dumps(data, sort_keys=True, separators=(",", ":"), allow_nan=False)


def graph_digest(data: dict) -> str:
    """sha256 of the graph's canonical JSON (sorted keys, no spaces)."""
    return hashlib.sha256(canonical_json(data).encode("utf-8")).hexdigest()


def resolve_op(name: str) -> Any:
    """The callable for an allow-listed op name, or RejectedError."""
    if name in PYTHON_OPS:
        return PYTHON_OPS[name]
    if name not in ALLOWED_OPS and name not in NO_OP_OPS:
        raise _bad(f"op '{name}' is not on the ATen allow-list")
    import torch

    _, packet, overload = name.split(".")
    try:
        return getattr(getattr(torch.ops.aten, packet), overload)
    except (AttributeError, RuntimeError):
        raise _bad(f"op '{name}' does not exist in this torch version") from None


def _decode_constant(name: str, spec: Any) -> "torch.Tensor":
    import torch

    if not isinstance(spec, dict) or spec.get("dtype") not in DTYPES or not isinstance(spec.get("shape"), list):
        raise _bad(f"constant '{name}' is malformed")
    shape = spec["shape"]
    if not all(isinstance(d, int) and not isinstance(d, bool) and d >= 0 for d in shape):
        raise _bad(f"constant '{name}' has a bad shape")
    numel = math.prod(shape)
    data = spec.get("data")
    if numel > MAX_CONSTANT_ELEMENTS or not isinstance(data, list) or len(data) != numel:
        raise _bad(f"constant '{name}' has {len(data) if isinstance(data, list) else '?'} values for shape {shape}")
    values = [_decode_float(v) if isinstance(v, dict) else v for v in data]
    if not all(isinstance(v, (int, float, bool)) for v in values):
        raise _bad(f"constant '{name}' holds non-numbers")
    return torch.tensor(values, dtype=getattr(torch, spec["dtype"])).reshape(shape)


def _decode_float(v: dict) -> float:
    if set(v) != {"float"} or v["float"] not in ("inf", "-inf", "nan"):
        raise _bad(f"bad tagged value {v!r}")
    return float(v["float"])


_DEVICE = "\x00device"
"""Environment key of the input's device (cannot clash with a node name: names are checked identifiers)."""


def _refs(a: Any) -> list[str]:
    if isinstance(a, list):
        return [r for x in a for r in _refs(x)]
    if isinstance(a, dict):
        kind, v = next(iter(a.items()))
        return [v] if kind == "ref" else [f"const:{v}"] if kind == "const" else []
    return []


def _compile_arg(a: Any) -> tuple[bool, Any]:
    """(dynamic, value): a static Python value, or a getter env -> value. Resolved once at load time."""
    import torch

    if isinstance(a, list):
        parts = [_compile_arg(x) for x in a]
        if not any(d for d, _ in parts):
            return False, [v for _, v in parts]
        return True, lambda env, parts=parts: [g(env) if d else g for d, g in parts]
    if isinstance(a, dict):
        kind, v = next(iter(a.items()))
        if kind == "ref":
            return True, lambda env, v=v: env[v]
        if kind == "const":
            return True, lambda env, key=f"const:{v}": env[key]
        if kind == "device":
            return True, lambda env: env[_DEVICE]
        if kind == "float":
            return False, float(v)
        if kind == "dtype":
            return False, getattr(torch, v)
        if kind == "layout":
            return False, torch.strided
        if kind == "memory_format":
            return False, getattr(torch, v)
    return False, a


def _live(nodes: list[tuple[str, Any, Any, Any]], output: Any) -> list[tuple[str, Any, Any, Any]]:
    """Nodes the output depends on, in order: assertions (no-ops here) and what only feeds them are dropped."""
    needed = set(_refs(output))
    keep = []
    for node in reversed(nodes):
        name, fn, args, kwargs = node
        if name in needed:
            keep.append(node)
            needed.update(_refs(args))
            needed.update(_refs(list(kwargs.values())))
    return list(reversed(keep))


def _make_module(data: dict, nodes: list[tuple[str, Any, Any, Any]], constants: dict, output: Any, device: str) -> "torch.nn.Module":
    import torch

    program = []
    for name, fn, args, kwargs in _live(nodes, output):
        arg_specs = [_compile_arg(x) for x in args]
        kw_specs = {k: _compile_arg(v) for k, v in kwargs.items()}
        program.append((name, fn, arg_specs, kw_specs))
    _, out_getter = _compile_arg(output)

    class CompiledCredit(torch.nn.Module):
        """A rebuilt credit function: forward(agents_q [B, N] or [B, T, N], global_state [B, S] or [B, T, S])."""

        def __init__(self) -> None:
            super().__init__()
            self.n_agents = data.get("n_agents")
            self.state_dim = data.get("state_dim")
            self.n_nodes = len(program)
            self._const_names = list(constants)
            for i, (name, tensor) in enumerate(constants.items()):
                self.register_buffer(f"const_{i}", tensor.to(device), persistent=False)

        def forward(self, agents_q: torch.Tensor, global_state: torch.Tensor) -> torch.Tensor:
            if agents_q.dim() == 3:
                b, t, n = agents_q.shape
                out = self._run(agents_q.reshape(b * t, n), global_state.reshape(b * t, global_state.shape[-1]))
                return out.reshape(b, t, 1)
            return self._run(agents_q, global_state)

        def _run(self, agents_q: torch.Tensor, global_state: torch.Tensor) -> torch.Tensor:
            env: dict[str, Any] = {"agents_q": agents_q, "global_state": global_state, _DEVICE: agents_q.device}
            for i, name in enumerate(self._const_names):
                env[f"const:{name}"] = getattr(self, f"const_{i}")
            for name, fn, arg_specs, kw_specs in program:
                if fn is None:
                    env[name] = None
                    continue
                env[name] = fn(*[g(env) if d else g for d, g in arg_specs], **{k: g(env) if d else g for k, (d, g) in kw_specs.items()})
            return out_getter(env)

    return CompiledCredit()


def _check_arg(a: Any, known: set[str], constants: set[str], depth: int = 0) -> None:
    if depth > 8:
        raise _bad("arguments nested too deeply")
    if a is None or isinstance(a, (bool, int, str)):
        if isinstance(a, str) and len(a) > 200:
            raise _bad("string argument too long")
        return
    if isinstance(a, float):
        if not math.isfinite(a):
            raise _bad("non-finite float literal (must be tagged)")
        return
    if isinstance(a, list):
        for x in a:
            _check_arg(x, known, constants, depth + 1)
        return
    if isinstance(a, dict) and len(a) == 1:
        kind, v = next(iter(a.items()))
        if not isinstance(v, str):
            raise _bad(f"argument tag '{kind}' needs a string")
        ok = {"ref": lambda: v in known, "const": lambda: v in constants,
              "float": lambda: v in ("inf", "-inf", "nan"), "dtype": lambda: v in DTYPES,
              "device": lambda: isinstance(v, str) and v.split(":")[0] in ("cpu", "cuda"),
              "layout": lambda: v in LAYOUTS, "memory_format": lambda: v in MEMORY_FORMATS}
        if kind not in ok:
            raise _bad(f"unknown argument tag '{kind}'")
        if not ok[kind]():
            raise _bad(f"bad {kind} argument {v!r} (undefined or not allowed)")
        return
    raise _bad(f"argument of type {type(a).__name__} is not allowed")


_NODE_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,127}")
"""Node and constant names: plain identifiers (export's own names are), so no name can alias an
environment key such as the device slot or a 'const:' entry."""


def load_graph(data: dict, device: str = "cpu") -> "torch.nn.Module":
    """Rebuild a graph in the trusted process; RejectedError on any unknown op or malformed data.

    Every malformed input ends in RejectedError (never a TypeError or a RecursionError): a graph
    comes from a worker or a store file, both untrusted.

    >>> import torch
    >>> g = {"format": FORMAT, "inputs": ["agents_q", "global_state"], "constants": {},
    ...      "nodes": [{"name": "s", "op": "aten.sum.dim_IntList", "args": [{"ref": "agents_q"}, [-1], True], "kwargs": {}}],
    ...      "output": {"ref": "s"}}
    >>> load_graph(g)(torch.ones(4, 3), torch.zeros(4, 2)).tolist()
    [[3.0], [3.0], [3.0], [3.0]]
    """
    try:
        return _load_graph(data, device)
    except RejectedError:
        raise
    except (TypeError, ValueError, KeyError, IndexError, AttributeError, OverflowError, RuntimeError,
            RecursionError, MemoryError) as err:
        raise _bad(f"malformed data ({type(err).__name__})") from None


def _load_graph(data: dict, device: str = "cpu") -> "torch.nn.Module":
    """load_graph without the catch-all (see there)."""
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise _bad(f"expected format '{FORMAT}'")
    if data.get("inputs") != ["agents_q", "global_state"]:
        raise _bad("inputs must be ['agents_q', 'global_state']")
    raw_consts = data.get("constants", {})
    raw_nodes = data.get("nodes")
    if not isinstance(raw_consts, dict) or not isinstance(raw_nodes, list) or len(raw_nodes) > MAX_NODES:
        raise _bad("constants must be an object and nodes a list (at most %d)" % MAX_NODES)
    if sum(math.prod(c["shape"]) if isinstance(c, dict) and isinstance(c.get("shape"), list)
           and all(isinstance(d, int) and not isinstance(d, bool) and d >= 0 for d in c["shape"]) else 0
           for c in raw_consts.values()) > MAX_CONSTANT_ELEMENTS:
        raise _bad("constants too large")
    for k in raw_consts:
        if not _NODE_NAME.fullmatch(k):
            raise _bad("constant names must be identifiers")
    constants = {k: _decode_constant(k, v) for k, v in raw_consts.items()}
    known = {"agents_q", "global_state"}
    nodes: list[tuple[str, Any, Any, Any]] = []
    for node in raw_nodes:
        if not isinstance(node, dict) or not isinstance(node.get("name"), str) or not isinstance(node.get("op"), str):
            raise _bad("each node needs a name and an op")
        name, op = node["name"], node["op"]
        if not _NODE_NAME.fullmatch(name):
            raise _bad("node names must be identifiers")
        if name in known:
            raise _bad(f"node name '{name}' defined twice")
        args, kwargs = node.get("args", []), node.get("kwargs", {})
        if not isinstance(args, list) or not isinstance(kwargs, dict):
            raise _bad(f"node '{name}' has malformed arguments")
        _check_arg(args, known, set(constants))
        for k, v in kwargs.items():
            if not isinstance(k, str):
                raise _bad("keyword names must be strings")
            _check_arg(v, known, set(constants))
        fn = None if op in NO_OP_OPS else resolve_op(op)
        nodes.append((name, fn, args, kwargs))
        known.add(name)
    output = data.get("output")
    if not (isinstance(output, dict) and set(output) == {"ref"} and isinstance(output["ref"], str) and output["ref"] in known):
        raise _bad("output must reference a node")
    return _make_module(data, nodes, constants, output, device)
