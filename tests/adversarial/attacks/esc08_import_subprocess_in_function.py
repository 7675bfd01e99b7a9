# attack: import subprocess inside the function
# expect: rejected
# status: escape
# task: any
# marker: yes
def QLLMNetwork(agents_q, global_state):
    import subprocess
    subprocess.run(["touch", "TFCAF_MARKER"])
    return agents_q.sum(dim=-1, keepdim=True)
