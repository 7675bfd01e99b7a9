# attack: zero-width space inside a name
# expect: rejected
# status: text
# task: any
def QLLMNetwork(agents_q, global_state):
    q​ = agents_q
    return agents_q.sum(dim=-1, keepdim=True)
