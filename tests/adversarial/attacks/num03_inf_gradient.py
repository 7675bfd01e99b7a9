# attack: sqrt at zero: finite output, infinite gradient
# expect: rejected
# status: property
# task: any
import torch
def QLLMNetwork(agents_q, global_state):
    return agents_q.sum(dim=-1, keepdim=True) + torch.sqrt(agents_q - agents_q).sum(dim=-1, keepdim=True)
