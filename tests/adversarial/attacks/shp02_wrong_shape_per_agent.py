# attack: returns [B, N]
# expect: rejected
# status: contract
# task: any
def QLLMNetwork(agents_q, global_state):
    return agents_q * 2.0
