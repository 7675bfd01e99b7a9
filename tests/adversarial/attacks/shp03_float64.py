# attack: returns float64
# expect: rejected
# status: contract
# task: any
def QLLMNetwork(agents_q, global_state):
    return agents_q.double().sum(dim=-1, keepdim=True)
