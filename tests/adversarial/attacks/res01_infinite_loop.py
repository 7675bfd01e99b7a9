# attack: three nested 1000-step loops (1e9 iterations)
# expect: rejected
# status: timeout
# task: any
def QLLMNetwork(agents_q, global_state):
    x = agents_q.sum(dim=-1, keepdim=True)
    for i in range(1000):
        for j in range(1000):
            for k in range(1000):
                x = x + 0.0
    return x
