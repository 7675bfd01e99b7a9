# attack: exception traceback frame walk
# expect: rejected
# status: static|escape
# task: any
def QLLMNetwork(agents_q, global_state):
    try:
        1 / 0
    except Exception as e:
        g = e.__traceback__.tb_frame.f_globals
    return agents_q.sum(dim=-1, keepdim=True)
