# attack: random noise in the output
# expect: rejected
# status: static
# task: any
import torch
def QLLMNetwork(agents_q, global_state):
    return agents_q.sum(dim=-1, keepdim=True) + torch.randn_like(agents_q[:, :1])
