# attack: a 10 GB string
# expect: rejected
# status: memory
# task: any
def QLLMNetwork(agents_q, global_state):
    s = "x" * (10 ** 10)
    return agents_q.sum(dim=-1, keepdim=True)
