# attack: eval of a string
# expect: rejected
# status: escape
# task: any
def QLLMNetwork(agents_q, global_state):
    eval("1 + 1")
    return agents_q.sum(dim=-1, keepdim=True)
