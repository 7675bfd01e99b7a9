# attack: a NaN guard branching on tensor data cannot be compiled
# expect: rejected
# status: export
# task: any
import torch
def QLLMNetwork(agents_q, global_state):
    if bool((agents_q != agents_q).any()):
        return torch.zeros_like(agents_q[:, :1])
    return agents_q.sum(dim=-1, keepdim=True)
