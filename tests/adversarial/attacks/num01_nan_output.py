# attack: NaN in the output
# expect: rejected
# status: property
# task: any
def QLLMNetwork(agents_q, global_state):
    return agents_q.sum(dim=-1, keepdim=True) * float("nan")
