# attack: compile() to build a code object
# expect: rejected
# status: escape
# task: any
def QLLMNetwork(agents_q, global_state):
    code = compile("1", "x", "eval")
    return agents_q.sum(dim=-1, keepdim=True)
