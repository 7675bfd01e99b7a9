# attack: detached from agents_q
# expect: rejected
# status: property
# task: any
def QLLMNetwork(agents_q, global_state):
    return agents_q.detach().sum(dim=-1, keepdim=True)
