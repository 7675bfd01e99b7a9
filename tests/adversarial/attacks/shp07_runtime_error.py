# attack: a matrix product with mismatched shapes raises
# expect: rejected
# status: runtime
# task: any
def QLLMNetwork(agents_q, global_state):
    return (agents_q @ global_state).sum(dim=-1, keepdim=True)
