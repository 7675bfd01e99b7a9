# attack: ignores agents_q (no gradient)
# expect: rejected
# status: property
# task: any
import torch
def QLLMNetwork(agents_q, global_state):
    return torch.zeros_like(agents_q[:, :1])
