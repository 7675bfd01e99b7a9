# attack: overwrite torch.sum in the shared namespace (module level)
# expect: rejected
# status: escape
# task: any
import torch
torch.sum = torch.mean
def QLLMNetwork(agents_q, global_state):
    return agents_q.sum(dim=-1, keepdim=True)
