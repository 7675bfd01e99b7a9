# attack: allocate a 40 GB tensor
# expect: rejected
# status: memory
# task: any
import torch
def QLLMNetwork(agents_q, global_state):
    big = torch.ones(100000, 100000)
    return agents_q.sum(dim=-1, keepdim=True) + big.sum() * 0.0
