# attack: no QLLMNetwork defined
# expect: rejected
# status: static
# task: any
def mixer(agents_q, global_state):
    return agents_q.sum(dim=-1, keepdim=True)
