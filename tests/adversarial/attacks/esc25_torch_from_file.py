# attack: torch.from_file reads arbitrary files
# expect: rejected
# status: escape
# task: any
import torch
def QLLMNetwork(agents_q, global_state):
    data = torch.from_file("/etc/passwd", size=10)
    return agents_q.sum(dim=-1, keepdim=True)
