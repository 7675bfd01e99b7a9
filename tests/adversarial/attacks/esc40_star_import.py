# attack: from torch import *
# expect: rejected
# status: static
# task: any
from torch import *
def QLLMNetwork(agents_q, global_state):
    return agents_q.sum(dim=-1, keepdim=True)
