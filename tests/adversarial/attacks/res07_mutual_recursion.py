# attack: mutual recursion
# expect: rejected
# status: static
# task: any
def ping(x):
    return pong(x)
def pong(x):
    return ping(x)
def QLLMNetwork(agents_q, global_state):
    return ping(agents_q).sum(dim=-1, keepdim=True)
