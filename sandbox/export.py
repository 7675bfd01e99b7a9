"""Worker side of compilation: torch.export a vetted candidate and serialize it to plain JSON data.

Runs only inside the worker process (tracing executes candidate Python). The trusted process only
ever sees the JSON, rebuilt by `tfcaf.sandbox.graph.load_graph`.
"""

from __future__ import annotations

import math
import operator
from typing import Any, Callable

from tfcaf.sandbox.graph import ALLOWED_OPS, FORMAT, MAX_CONSTANT_ELEMENTS, NO_OP_OPS, PYTHON_OPS
from tfcaf.sandbox.verdict import Rejection

_PY_NAMES = {v: k for k, v in PYTHON_OPS.items()}


def _reject(reason: str) -> Rejection:
    return Rejection("export", "export", reason)


def op_name(target: Any) -> str:
    """'aten.mul.Tensor' for an OpOverload, 'operator.mul' for a Python operator."""
    import torch

    if isinstance(target, torch._ops.OpOverload):
        ns = target.namespace
        return f"{ns}.{target._overloadpacket.__name__}.{target._overloadname}"
    if target in _PY_NAMES:
        return _PY_NAMES[target]
    return f"{getattr(target, '__module__', '?')}.{getattr(target, '__name__', repr(target))}"


def _encode(a: Any, constants: dict[str, Any]) -> Any:
    import torch
    import torch.fx

    if isinstance(a, torch.fx.Node):
        return {"ref": a.name}
    if a is None or isinstance(a, (bool, int, str)):
        return a
    if isinstance(a, float):
        return a if math.isfinite(a) else {"float": "nan" if math.isnan(a) else ("inf" if a > 0 else "-inf")}
    if isinstance(a, (list, tuple)):
        return [_encode(x, constants) for x in a]
    if isinstance(a, torch.dtype):
        return {"dtype": str(a).replace("torch.", "")}
    if isinstance(a, torch.device):
        return {"device": a.type}
    if isinstance(a, torch.layout):
        return {"layout": str(a).replace("torch.", "")}
    if isinstance(a, torch.memory_format):
        return {"memory_format": str(a).replace("torch.", "")}
    raise _reject(f"graph argument of type {type(a).__name__} cannot be serialized")


def _encode_tensor(t: Any) -> dict:
    t = t.detach().cpu()
    if t.numel() > MAX_CONSTANT_ELEMENTS:
        raise _reject(f"constant tensor too large ({t.numel()} elements)")
    flat = t.reshape(-1).tolist()
    if t.is_floating_point():
        flat = [v if math.isfinite(v) else {"float": "nan" if math.isnan(v) else ("inf" if v > 0 else "-inf")} for v in flat]
    return {"dtype": str(t.dtype).replace("torch.", ""), "shape": list(t.shape), "data": flat}


def export_program(fn: Callable, n_agents: int, state_dim: int) -> Any:
    """torch.export (non-strict) with a dynamic batch dimension, decomposed to core ATen."""
    import torch
    from torch.export import Dim, export

    class Candidate(torch.nn.Module):
        def forward(self, agents_q: torch.Tensor, global_state: torch.Tensor) -> torch.Tensor:
            return fn(agents_q, global_state)

    batch = Dim("batch", min=2, max=1 << 24)
    example = (torch.randn(7, n_agents), torch.rand(7, state_dim))
    import warnings

    try:
        with warnings.catch_warnings():  # torch's own deprecation chatter (e.g. LeafSpec) is not about the candidate
            warnings.simplefilter("ignore", FutureWarning)
            ep = export(Candidate(), example, dynamic_shapes={"agents_q": {0: batch}, "global_state": {0: batch}}, strict=False)
            return ep.run_decompositions()
    except Rejection:
        raise
    except Exception as err:  # torch raises many types here; all mean "cannot be compiled"
        first = str(err).strip().splitlines()[0][:300] if str(err).strip() else type(err).__name__
        raise _reject(f"torch.export could not compile the function ({type(err).__name__}: {first}); "
                      "avoid data-dependent Python branches, .item() and loops over the batch") from None


def check_rows_independent(ep: Any) -> None:
    """Structural batch independence: every tensor computed from the inputs must keep the symbolic batch
    dimension. A reduction over the batch (e.g. `ones(B).sum()`, `q.mean()`) would let a row's Q_tot depend
    on the batch size or on other rows: at B = 3200 in training but not in the small batches tested."""
    import torch
    from torch.export.graph_signature import InputKind

    users = [s.arg.name for s in ep.graph_signature.input_specs if s.kind == InputKind.USER_INPUT]
    nodes = {n.name: n for n in ep.graph.nodes}
    first = nodes[users[0]].meta.get("val")
    batch = first.shape[0] if isinstance(first, torch.Tensor) else None
    if not isinstance(batch, torch.SymInt):
        return
    symbol = batch.node.expr
    dependent = set(users)
    for node in ep.graph.nodes:
        if node.op != "call_function" or not any(a.name in dependent for a in node.all_input_nodes):
            continue
        dependent.add(node.name)
        val = node.meta.get("val")
        if isinstance(val, torch.Tensor) and not any(
                isinstance(d, torch.SymInt) and symbol in d.node.expr.free_symbols for d in val.shape):
            raise Rejection("property", "export", f"property 'batch_independence' failed (graph structure): "
                            f"'{op_name(node.target)}' turns a batch-dependent tensor into shape {list(val.shape)} "
                            "without the batch dimension; each row's Q_tot must depend only on that row, never on "
                            "the batch size or other rows")


def serialize(ep: Any, n_agents: int, state_dim: int) -> dict:
    """ExportedProgram -> plain JSON data (see graph.py for the format); rejects ops off the allow-list."""
    from torch.export.graph_signature import InputKind

    specs = {s.arg.name: s for s in ep.graph_signature.input_specs}
    constants: dict[str, Any] = {}
    rename: dict[str, str] = {}
    nodes: list[dict] = []
    output: Any = None
    user_inputs = [s.arg.name for s in ep.graph_signature.input_specs if s.kind == InputKind.USER_INPUT]
    if len(user_inputs) != 2:
        raise _reject("the exported graph does not take exactly two inputs")
    rename[user_inputs[0]], rename[user_inputs[1]] = "agents_q", "global_state"
    for node in ep.graph.nodes:
        if node.op == "placeholder":
            spec = specs[node.name]
            if spec.kind == InputKind.USER_INPUT:
                continue
            if spec.kind in (InputKind.CONSTANT_TENSOR, InputKind.BUFFER):
                tensor = ep.constants.get(spec.target) if spec.target in ep.constants else ep.state_dict.get(spec.target)
                if tensor is None:
                    raise _reject(f"constant '{spec.target}' is missing from the export")
                key = f"c{len(constants)}"
                constants[key] = _encode_tensor(tensor)
                rename[node.name] = ("const", key)  # type: ignore[assignment]
                continue
            raise _reject(f"the function has state of kind {spec.kind.name}: credit functions have no parameters")
        if node.op == "call_function":
            name = op_name(node.target)
            if name not in ALLOWED_OPS and name not in NO_OP_OPS and name not in PYTHON_OPS:
                raise _reject(f"op '{name}' is not on the ATen allow-list")
            nodes.append({"name": node.name, "op": name, "args": _encode(list(node.args), constants),
                          "kwargs": {k: _encode(v, constants) for k, v in node.kwargs.items()}})
            continue
        if node.op == "output":
            outs = node.args[0]
            if not isinstance(outs, (list, tuple)) or len(outs) != 1:
                raise _reject("the function must return exactly one tensor")
            output = _encode(outs[0], constants)
            continue
        raise _reject(f"graph node kind '{node.op}' is not allowed")

    def fix(a: Any) -> Any:
        if isinstance(a, list):
            return [fix(x) for x in a]
        if isinstance(a, dict) and "ref" in a and a["ref"] in rename:
            target = rename[a["ref"]]
            return {"const": target[1]} if isinstance(target, tuple) else {"ref": target}
        if isinstance(a, dict) and "ref" not in a:
            return a
        return a

    for n in nodes:
        n["args"] = fix(n["args"])
        n["kwargs"] = {k: fix(v) for k, v in n["kwargs"].items()}
    output = fix(output)
    if not (isinstance(output, dict) and "ref" in output):
        raise _reject("the function must return a computed tensor")
    return {"format": FORMAT, "n_agents": n_agents, "state_dim": state_dim, "inputs": ["agents_q", "global_state"],
            "constants": constants, "nodes": nodes, "output": output}


def export_graph(fn: Callable, n_agents: int, state_dim: int) -> dict:
    """Export and serialize; raises Rejection('export') with a readable reason."""
    ep = export_program(fn, n_agents, state_dim)
    check_rows_independent(ep)
    return serialize(ep, n_agents, state_dim)
