# attack: exec of a string
# expect: rejected
# status: escape
# task: any
# marker: yes
def QLLMNetwork(agents_q, global_state):
    exec("import os; os.system('touch TFCAF_MARKER')")
    return agents_q.sum(dim=-1, keepdim=True)
