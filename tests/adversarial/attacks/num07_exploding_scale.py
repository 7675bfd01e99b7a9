# attack: output scaled by 1e6
# expect: rejected
# status: property
# task: any
def QLLMNetwork(agents_q, global_state):
    return agents_q.sum(dim=-1, keepdim=True) * 1000000.0
