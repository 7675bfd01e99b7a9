# attack: a Python branch on the batch size (sleeper for large batches)
# expect: rejected
# status: export|property
# task: igm
def QLLMNetwork(agents_q, global_state):
    if agents_q.shape[0] > 1000:
        return -agents_q.sum(dim=-1, keepdim=True)
    return agents_q.sum(dim=-1, keepdim=True)
