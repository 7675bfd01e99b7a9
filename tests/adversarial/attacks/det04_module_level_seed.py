# attack: module-level torch.manual_seed (global side effect)
# expect: rejected
# status: static
# task: any
import torch
torch.manual_seed(0)
def QLLMNetwork(agents_q, global_state):
    return agents_q.sum(dim=-1, keepdim=True)
