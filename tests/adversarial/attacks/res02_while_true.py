# attack: while True
# expect: rejected
# status: static
# task: any
def QLLMNetwork(agents_q, global_state):
    while True:
        pass
    return agents_q.sum(dim=-1, keepdim=True)
