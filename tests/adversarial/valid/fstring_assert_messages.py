# expect: accepted
# tasks: matrix_penalty
# style: asserts with f-string messages (dropped before execution)
import torch


def QLLMNetwork(agents_q, global_state):
    batch, n = agents_q.shape
    assert agents_q.dim() == 2, f"agents_q must be [B, N], got {tuple(agents_q.shape)}"
    assert global_state.shape[0] == batch, f"batch {global_state.shape[0]} != {batch}"
    assert n >= 1, f"{n=} agents"
    return agents_q.sum(dim=-1, keepdim=True)
