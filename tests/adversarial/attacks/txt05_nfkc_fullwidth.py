# attack: fullwidth letters that NFKC turns into eval
# expect: rejected
# status: text
# task: any
def QLLMNetwork(agents_q, global_state):
    ｅｖａｌ("1")
    return agents_q.sum(dim=-1, keepdim=True)
