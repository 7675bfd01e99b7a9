# attack: a list of 10**10 elements
# expect: rejected
# status: memory
# task: any
def QLLMNetwork(agents_q, global_state):
    junk = [0] * (10 ** 10)
    return agents_q.sum(dim=-1, keepdim=True)
