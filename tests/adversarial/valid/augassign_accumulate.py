# expect: accepted
# tasks: lbf_2s-8x8-2p-2f-coop
# style: augmented assignment accumulating over agents
import torch


def QLLMNetwork(agents_q, global_state):
    total = torch.zeros_like(agents_q[:, :1])  # [B, 1]
    for i in range(agents_q.shape[1]):
        weight = 1.0 + torch.sigmoid(global_state[:, i:i + 1])  # [B, 1]
        total += weight * agents_q[:, i:i + 1]
    return total
