# attack: type() to build new classes
# expect: rejected
# status: escape
# task: any
def QLLMNetwork(agents_q, global_state):
    T = type("T", (), {})
    return agents_q.sum(dim=-1, keepdim=True)
