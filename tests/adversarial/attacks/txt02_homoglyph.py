# attack: Cyrillic a in an identifier (looks like agents_q)
# expect: rejected
# status: text
# task: any
def QLLMNetwork(agents_q, global_state):
    аgents_q = agents_q * 0.0
    return аgents_q.sum(dim=-1, keepdim=True)
