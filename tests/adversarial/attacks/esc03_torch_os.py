# attack: torch.os.system through the torch module
# expect: rejected
# status: escape
# task: any
# marker: yes
import torch
def QLLMNetwork(agents_q, global_state):
    torch.os.system("touch TFCAF_MARKER")
    return agents_q.sum(dim=-1, keepdim=True)
