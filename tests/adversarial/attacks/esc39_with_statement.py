# attack: with statement (context managers run code)
# expect: rejected
# status: static
# task: any
import torch
def QLLMNetwork(agents_q, global_state):
    with torch.no_grad():
        w = global_state.sum(dim=-1, keepdim=True)
    return agents_q.sum(dim=-1, keepdim=True)
