# attack: returns [B] instead of [B, 1]
# expect: rejected
# status: contract
# task: any
def QLLMNetwork(agents_q, global_state):
    return agents_q.sum(dim=-1)
