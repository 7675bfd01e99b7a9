# attack: returns a Python float
# expect: rejected
# status: contract
# task: any
def QLLMNetwork(agents_q, global_state):
    return 1.0
