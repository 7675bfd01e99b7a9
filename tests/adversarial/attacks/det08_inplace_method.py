# attack: in-place add_ on the input
# expect: rejected
# status: static
# task: any
def QLLMNetwork(agents_q, global_state):
    agents_q.add_(1.0)
    return agents_q.sum(dim=-1, keepdim=True)
