# attack: writes into agents_q
# expect: rejected
# status: static
# task: any
def QLLMNetwork(agents_q, global_state):
    agents_q[:, 0] = 0.0
    return agents_q.sum(dim=-1, keepdim=True)
