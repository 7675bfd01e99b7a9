# attack: range(10**9)
# expect: rejected
# status: static
# task: any
def QLLMNetwork(agents_q, global_state):
    for i in range(1000000000):
        pass
    return agents_q.sum(dim=-1, keepdim=True)
