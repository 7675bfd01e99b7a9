# attack: uninitialised memory
# expect: rejected
# status: static
# task: any
import torch
def QLLMNetwork(agents_q, global_state):
    return agents_q.sum(dim=-1, keepdim=True) + torch.empty_like(agents_q[:, :1]) * 0.0
