# attack: extra parameter on the entry point
# expect: rejected
# status: static
# task: any
def QLLMNetwork(agents_q, global_state, hidden=None):
    return agents_q.sum(dim=-1, keepdim=True)
