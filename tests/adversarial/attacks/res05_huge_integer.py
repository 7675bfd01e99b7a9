# attack: a huge integer power
# expect: rejected
# status: timeout|memory
# task: any
def QLLMNetwork(agents_q, global_state):
    n = 10 ** (10 ** 9)
    return agents_q.sum(dim=-1, keepdim=True)
