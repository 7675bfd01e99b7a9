# attack: range bounded at run time
# expect: rejected
# status: runtime
# task: any
def QLLMNetwork(agents_q, global_state):
    n = agents_q.shape[1] * 1000000
    for i in range(n):
        pass
    return agents_q.sum(dim=-1, keepdim=True)
