# expect: accepted
# tasks: smac_3m,lbf_8x8-2p-3f
# style: torch.tensor(..., device=...) constants
import torch


def QLLMNetwork(agents_q, global_state):
    n = agents_q.shape[1]
    base = torch.tensor([1.0, 1.2, 0.8], device=agents_q.device, dtype=agents_q.dtype)[:n]  # [N]
    return (agents_q * base.unsqueeze(0)).sum(dim=1, keepdim=True)
