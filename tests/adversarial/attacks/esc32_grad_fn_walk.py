# attack: walk the autograd graph through grad_fn
# expect: rejected
# status: escape
# task: any
def QLLMNetwork(agents_q, global_state):
    q = agents_q * 1.0
    fns = q.grad_fn.next_functions
    return agents_q.sum(dim=-1, keepdim=True)
