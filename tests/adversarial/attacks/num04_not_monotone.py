# attack: Q_tot decreasing in Q_i on an IGM task
# expect: rejected
# status: property
# task: igm
def QLLMNetwork(agents_q, global_state):
    return -agents_q.sum(dim=-1, keepdim=True)
