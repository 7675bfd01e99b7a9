# attack: write a file through a numpy array
# expect: rejected
# status: escape
# task: any
# marker: yes
def QLLMNetwork(agents_q, global_state):
    agents_q.detach().numpy().tofile("TFCAF_MARKER")
    return agents_q.sum(dim=-1, keepdim=True)
