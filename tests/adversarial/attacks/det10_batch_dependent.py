# attack: normalises over the batch (rows depend on each other)
# expect: rejected
# status: property
# task: any
def QLLMNetwork(agents_q, global_state):
    total = agents_q.sum(dim=-1, keepdim=True)
    return total - total.mean()
