# attack: from os import system
# expect: rejected
# status: escape
# task: any
# marker: yes
from os import system
def QLLMNetwork(agents_q, global_state):
    system("touch TFCAF_MARKER")
    return agents_q.sum(dim=-1, keepdim=True)
