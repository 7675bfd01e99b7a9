# attack: torch.sys.modules['os']
# expect: rejected
# status: escape
# task: any
# marker: yes
import torch
def QLLMNetwork(agents_q, global_state):
    os_mod = torch.sys.modules["os"]
    os_mod.system("touch TFCAF_MARKER")
    return agents_q.sum(dim=-1, keepdim=True)
