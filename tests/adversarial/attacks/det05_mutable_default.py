# attack: mutable default argument as a cache
# expect: rejected
# status: static
# task: any
def helper(x, cache=[]):
    cache.append(x)
    return x
def QLLMNetwork(agents_q, global_state):
    return helper(agents_q).sum(dim=-1, keepdim=True)
