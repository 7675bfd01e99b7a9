# attack: Greek omicron inside a Latin name
# expect: rejected
# status: text
# task: any
def QLLMNetwork(agents_q, global_state):
    tοtal = agents_q.sum(dim=-1, keepdim=True)
    return tοtal
