# attack: softmax(Q)-weighted sum is not monotone (IGM)
# expect: rejected
# status: property
# task: igm
import torch
def QLLMNetwork(agents_q, global_state):
    w = torch.softmax(-agents_q, dim=-1)
    return (w * agents_q).sum(dim=-1, keepdim=True)
