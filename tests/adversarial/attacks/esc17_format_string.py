# attack: str.format attribute access
# expect: rejected
# status: escape
# task: any
def QLLMNetwork(agents_q, global_state):
    leak = "{0.__class__.__init__.__globals__}".format(agents_q)
    return agents_q.sum(dim=-1, keepdim=True)
