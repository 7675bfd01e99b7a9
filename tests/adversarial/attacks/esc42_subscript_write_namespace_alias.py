# attack: item assignment into a namespace
# expect: rejected
# status: escape|restricted|runtime
# task: any
import torch
def QLLMNetwork(agents_q, global_state):
    t = torch
    t["sum"] = 1
    return agents_q.sum(dim=-1, keepdim=True)
