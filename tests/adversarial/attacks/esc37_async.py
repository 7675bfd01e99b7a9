# attack: async function
# expect: rejected
# status: static
# task: any
async def QLLMNetwork(agents_q, global_state):
    return agents_q.sum(dim=-1, keepdim=True)
