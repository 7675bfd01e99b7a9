# attack: str.format_map attribute access
# expect: rejected
# status: escape
# task: any
def QLLMNetwork(agents_q, global_state):
    leak = "{x.shape}".format_map({"x": agents_q})
    return agents_q.sum(dim=-1, keepdim=True)
