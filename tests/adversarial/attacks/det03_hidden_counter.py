# attack: state kept across calls in a module-level list
# expect: rejected
# status: property
# task: any
CALLS = []
def QLLMNetwork(agents_q, global_state):
    CALLS.append(1)
    return agents_q.sum(dim=-1, keepdim=True) + 0.001 * len(CALLS)
