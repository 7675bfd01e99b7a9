# attack: torch.builtins.eval (the known RestrictedPython escape)
# expect: rejected
# status: escape
# task: any
# marker: yes
import torch
def QLLMNetwork(agents_q, global_state):
    torch.builtins.eval("__import__('os').system('touch TFCAF_MARKER')")
    return agents_q.sum(dim=-1, keepdim=True)
