# attack: writes into agents_q through an alias
# expect: rejected
# status: property
# task: any
def QLLMNetwork(agents_q, global_state):
    q = agents_q
    q[:, 0] = 0.0
    return q.sum(dim=-1, keepdim=True)
