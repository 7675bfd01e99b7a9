# attack: __import__('os')
# expect: rejected
# status: escape
# task: any
# marker: yes
def QLLMNetwork(agents_q, global_state):
    __import__("os").system("touch TFCAF_MARKER")
    return agents_q.sum(dim=-1, keepdim=True)
