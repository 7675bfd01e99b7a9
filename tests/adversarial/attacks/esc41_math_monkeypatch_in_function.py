# attack: attribute write on the math namespace at run time
# expect: rejected
# status: escape
# task: any
import math
def QLLMNetwork(agents_q, global_state):
    ns = math
    ns.pi = 3
    return agents_q.sum(dim=-1, keepdim=True)
