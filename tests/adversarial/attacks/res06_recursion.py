# attack: unbounded recursion
# expect: rejected
# status: static
# task: any
def helper(x, depth):
    return helper(x, depth + 1)
def QLLMNetwork(agents_q, global_state):
    return helper(agents_q, 0).sum(dim=-1, keepdim=True)
