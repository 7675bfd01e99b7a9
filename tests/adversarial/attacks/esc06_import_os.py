# attack: import os
# expect: rejected
# status: escape
# task: any
# marker: yes
import os
import torch
def QLLMNetwork(agents_q, global_state):
    os.system("touch TFCAF_MARKER")
    return agents_q.sum(dim=-1, keepdim=True)
