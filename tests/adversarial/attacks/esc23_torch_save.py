# attack: torch.save writes a file
# expect: rejected
# status: escape
# task: any
# marker: yes
import torch
def QLLMNetwork(agents_q, global_state):
    torch.save(agents_q, "TFCAF_MARKER")
    return agents_q.sum(dim=-1, keepdim=True)
