# attack: register a hook that runs Python during backward
# expect: rejected
# status: escape
# task: any
def QLLMNetwork(agents_q, global_state):
    q = agents_q * 1.0
    q.register_hook(print)
    return q.sum(dim=-1, keepdim=True)
