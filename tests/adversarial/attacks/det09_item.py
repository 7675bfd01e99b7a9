# attack: .item() scalar extraction
# expect: rejected
# status: static
# task: any
def QLLMNetwork(agents_q, global_state):
    scale = agents_q.abs().max().item()
    return agents_q.sum(dim=-1, keepdim=True) / scale
