# attack: print floods (10^9 lines of 1 kB per call; prints go nowhere, the wall clock stops it)
# expect: rejected
# status: timeout
# task: any
def QLLMNetwork(agents_q, global_state):
    for i in range(1000):
        for j in range(1000):
            for k in range(1000):
                print("x" * 1000)
    return agents_q.sum(dim=-1, keepdim=True)
