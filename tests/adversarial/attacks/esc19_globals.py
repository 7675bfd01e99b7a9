# attack: globals() to reach the guards
# expect: rejected
# status: escape
# task: any
def QLLMNetwork(agents_q, global_state):
    g = globals()
    return agents_q.sum(dim=-1, keepdim=True)
