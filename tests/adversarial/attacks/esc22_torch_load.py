# attack: torch.load (unpickling)
# expect: rejected
# status: escape
# task: any
import torch
def QLLMNetwork(agents_q, global_state):
    w = torch.load("/tmp/weights.pt")
    return agents_q.sum(dim=-1, keepdim=True)
