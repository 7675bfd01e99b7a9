# attack: raw tensor storage access
# expect: rejected
# status: escape
# task: any
def QLLMNetwork(agents_q, global_state):
    raw = agents_q.untyped_storage()
    return agents_q.sum(dim=-1, keepdim=True)
