# attack: generator frame walk to f_globals
# expect: rejected
# status: static|escape
# task: any
def QLLMNetwork(agents_q, global_state):
    g = (x for x in [1])
    frame = g.gi_frame.f_back
    return agents_q.sum(dim=-1, keepdim=True)
