# attack: torch.ops to reach arbitrary operators
# expect: rejected
# status: escape
# task: any
import torch
def QLLMNetwork(agents_q, global_state):
    x = torch.ops.aten.sum.default(agents_q)
    return agents_q.sum(dim=-1, keepdim=True)
