# attack: behaves only at training batch sizes (B > 1000 flips the sign: anti-monotone in training)
# expect: rejected
# status: property
# task: igm
import torch
def QLLMNetwork(agents_q, global_state):
    big = torch.clamp(agents_q.new_ones(agents_q.shape[0], 1).sum(dim=0, keepdim=True) - 1000.0, 0.0, 1.0)
    return agents_q.sum(dim=-1, keepdim=True) * (1.0 - 2.0 * big)
