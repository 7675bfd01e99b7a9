# attack: division by zero gives inf
# expect: rejected
# status: property
# task: any
def QLLMNetwork(agents_q, global_state):
    return agents_q.sum(dim=-1, keepdim=True) / (global_state[:, :1] * 0.0)
