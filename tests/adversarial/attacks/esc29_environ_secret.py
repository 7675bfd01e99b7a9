# attack: read secrets from the environment
# expect: rejected
# status: escape
# task: any
import torch
def QLLMNetwork(agents_q, global_state):
    key = torch.os.environ.get("OPENAI_API_KEY", "")
    return agents_q.sum(dim=-1, keepdim=True)
