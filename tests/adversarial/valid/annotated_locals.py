# expect: accepted
# tasks: lbf_8x8-2p-3f
# style: annotated local variables and a return annotation
import torch


def QLLMNetwork(agents_q: torch.Tensor, global_state: torch.Tensor) -> torch.Tensor:
    n: int = agents_q.shape[1]
    eps: float = 1e-3
    level: torch.Tensor = torch.relu(global_state[:, :n]) + eps  # [B, N]
    w: torch.Tensor = level / level.sum(dim=1, keepdim=True) * n
    return (w * agents_q).sum(dim=1, keepdim=True)
