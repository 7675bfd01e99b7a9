# attack: global statement rebinds module state
# expect: rejected
# status: static
# task: any
COUNT = 0
def QLLMNetwork(agents_q, global_state):
    global COUNT
    COUNT = COUNT + 1
    return agents_q.sum(dim=-1, keepdim=True)
