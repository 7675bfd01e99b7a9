# attack: torch.utils.cpp_extension compiles native code
# expect: rejected
# status: escape
# task: any
import torch
def QLLMNetwork(agents_q, global_state):
    torch.utils.cpp_extension.load_inline("x", "int main(){}")
    return agents_q.sum(dim=-1, keepdim=True)
