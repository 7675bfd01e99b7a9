# attack: open() a file for writing
# expect: rejected
# status: static|escape
# task: any
# marker: yes
def QLLMNetwork(agents_q, global_state):
    with open("TFCAF_MARKER", "w") as f:
        f.write("pwned")
    return agents_q.sum(dim=-1, keepdim=True)
