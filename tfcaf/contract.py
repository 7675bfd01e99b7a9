"""The TFCAF contract: QLLM's credit-function signature and the shape glossary.

A training-free credit assignment function (TFCAF, QLLM paper Sec. 4) is a mixing function with no
trainable parameters. Candidates define it under QLLM's own name and signature, so QLLM's published
functions can be vetted as they are::

    def QLLMNetwork(agents_q, global_state):
        # agents_q:     [B, N]  per-agent chosen-action Q values Q_i
        # global_state: [B, S]  the task's global state (layout: the task card)
        return q_tot  # [B, 1]  Q_tot, the team value

Convention: the function returns Q_tot directly (not weights); VDN is ``agents_q.sum(-1, keepdim=True)``.

Shape glossary (names used across the code base):

    B  batch (a flat batch of time steps for the credit function)
    T  time steps of an episode batch in the trainer: trainer tensors are [B, T, N] / [B, T, S]
    N  agents, S state features, O observation features, A actions, E parallel environments

`validated()` wraps any credit function (eager source, rebuilt graph, built-in mixer) so that shape,
dtype, device and finiteness are checked on the way in and out. `mix_episodes()` applies a [B, N]
credit function to trainer tensors [B, T, N] by flattening time into the batch.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Callable

if TYPE_CHECKING:  # torch is imported lazily so `import tfcaf` stays light
    import torch

ENTRY_POINT = "QLLMNetwork"
"""Name of the function a candidate must define (QLLM's name)."""

ARGUMENTS = ("agents_q", "global_state")
"""Its positional parameters, in order."""

CreditFunction = Callable[["torch.Tensor", "torch.Tensor"], "torch.Tensor"]


class ContractError(ValueError):
    """A tensor broke the TFCAF contract (shape, dtype, device, finiteness)."""


def check_inputs(agents_q: "torch.Tensor", global_state: "torch.Tensor", n_agents: int | None = None,
                 state_dim: int | None = None) -> None:
    """Raise ContractError unless agents_q is [B, N] and global_state is [B, S], same float dtype/device."""
    import torch

    if not isinstance(agents_q, torch.Tensor) or not isinstance(global_state, torch.Tensor):
        raise ContractError("agents_q and global_state must be torch tensors")
    if agents_q.dim() != 2 or global_state.dim() != 2:
        raise ContractError(f"expected agents_q [B, N] and global_state [B, S], got {tuple(agents_q.shape)} and {tuple(global_state.shape)}")
    if agents_q.shape[0] != global_state.shape[0]:
        raise ContractError(f"batch sizes differ: agents_q {agents_q.shape[0]}, global_state {global_state.shape[0]}")
    if n_agents is not None and agents_q.shape[1] != n_agents:
        raise ContractError(f"expected N={n_agents} agents, got {agents_q.shape[1]}")
    if state_dim is not None and global_state.shape[1] != state_dim:
        raise ContractError(f"expected state_dim S={state_dim}, got {global_state.shape[1]}")
    if not agents_q.is_floating_point() or agents_q.dtype != global_state.dtype:
        raise ContractError(f"expected one floating dtype, got {agents_q.dtype} and {global_state.dtype}")
    if agents_q.device != global_state.device:
        raise ContractError(f"inputs on different devices: {agents_q.device} and {global_state.device}")


def check_output(q_tot: object, agents_q: "torch.Tensor", *, finite: bool = True) -> None:
    """Raise ContractError unless q_tot is a [B, 1] tensor with agents_q's dtype and device."""
    import torch

    if not isinstance(q_tot, torch.Tensor):
        raise ContractError(f"{ENTRY_POINT} must return a torch.Tensor, got {type(q_tot).__name__}")
    expected = (agents_q.shape[0], 1)
    if tuple(q_tot.shape) != expected:
        raise ContractError(f"{ENTRY_POINT} must return shape [B, 1] = {list(expected)}, got {list(q_tot.shape)}")
    if q_tot.dtype != agents_q.dtype:
        raise ContractError(f"output dtype {q_tot.dtype} differs from the input dtype {agents_q.dtype}")
    if q_tot.device != agents_q.device:
        raise ContractError(f"output device {q_tot.device} differs from the input device {agents_q.device}")
    if finite and not bool(torch.isfinite(q_tot).all()):
        raise ContractError(f"{ENTRY_POINT} returned non-finite values (NaN or inf)")


def validated(fn: CreditFunction, n_agents: int | None = None, state_dim: int | None = None,
              *, check_finite: bool = True) -> CreditFunction:
    """Wrap a credit function so every call checks the contract in and out.

    >>> import torch
    >>> vdn = validated(lambda q, s: q.sum(-1, keepdim=True), n_agents=3)
    >>> vdn(torch.ones(4, 3), torch.zeros(4, 5)).shape
    torch.Size([4, 1])
    """

    def wrapper(agents_q: "torch.Tensor", global_state: "torch.Tensor") -> "torch.Tensor":
        check_inputs(agents_q, global_state, n_agents, state_dim)
        q_tot = fn(agents_q, global_state)
        check_output(q_tot, agents_q, finite=check_finite)
        return q_tot

    wrapper.__wrapped__ = fn  # type: ignore[attr-defined]
    return wrapper


def mix_episodes(fn: CreditFunction, agents_q: "torch.Tensor", global_state: "torch.Tensor") -> "torch.Tensor":
    """Apply a [B, N] credit function to trainer tensors: agents_q [B, T, N], global_state [B, T, S] -> [B, T, 1]."""
    b, t, n = agents_q.shape
    q_tot = fn(agents_q.reshape(b * t, n), global_state.reshape(b * t, global_state.shape[-1]))  # [B*T, 1]
    return q_tot.reshape(b, t, 1)


VDN_SOURCE = '''import torch


def QLLMNetwork(agents_q, global_state):
    """VDN: every agent gets credit 1."""
    return torch.sum(agents_q, dim=1, keepdim=True)  # [B, 1]
'''
"""VDN written as a candidate (the review's diff baseline, the vetter's known-good function)."""


def vdn(agents_q: "torch.Tensor", global_state: "torch.Tensor | None" = None) -> "torch.Tensor":
    """The one VDN reference: q_tot = sum_i Q_i, [B, N] -> [B, 1] (Sunehag et al. 2018).

    >>> import torch
    >>> vdn(torch.ones(2, 3)).tolist()
    [[3.0], [3.0]]
    """
    return agents_q.sum(dim=-1, keepdim=True)  # [B, 1]
