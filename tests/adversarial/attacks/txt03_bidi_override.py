# attack: Trojan Source bidi override hides code in a comment
# expect: rejected
# status: text
# task: any
def QLLMNetwork(agents_q, global_state):
    scale = 1.0  # ‮ } ⁦ scale = 0.0 ⁩ ⁦
    return agents_q.sum(dim=-1, keepdim=True) * scale
