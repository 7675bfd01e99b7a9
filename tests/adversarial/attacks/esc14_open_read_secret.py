# attack: read /etc/passwd
# expect: rejected
# status: escape
# task: any
def QLLMNetwork(agents_q, global_state):
    secret = open("/etc/passwd").read()
    return agents_q.sum(dim=-1, keepdim=True)
