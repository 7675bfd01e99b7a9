# attack: lambda __globals__
# expect: rejected
# status: static|escape
# task: any
f = lambda: 0
def QLLMNetwork(agents_q, global_state):
    g = f.__globals__
    return agents_q.sum(dim=-1, keepdim=True)
