# attack: decorator runs code at definition time
# expect: rejected
# status: static
# task: any
import torch
def deco(f):
    return f
@deco
def QLLMNetwork(agents_q, global_state):
    return agents_q.sum(dim=-1, keepdim=True)
