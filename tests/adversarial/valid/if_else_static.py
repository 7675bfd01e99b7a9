# expect: accepted
# tasks: smac_3m,matrix_climbing
# style: if/else on a static shape (unrolled by export), early return
import torch


def QLLMNetwork(agents_q, global_state):
    n = agents_q.shape[1]
    if n == 1:
        return agents_q
    if global_state.shape[1] >= n:
        w = 1.0 + 0.25 * torch.tanh(global_state[:, :n])
    else:
        w = torch.ones_like(agents_q)
    return (w * agents_q).sum(dim=1, keepdim=True)
