# attack: getattr with a dunder string
# expect: rejected
# status: escape
# task: any
def QLLMNetwork(agents_q, global_state):
    cls = getattr(agents_q, "__cl" + "ass__")
    return agents_q.sum(dim=-1, keepdim=True)
