# attack: class with a metaclass
# expect: rejected
# status: static
# task: any
import torch
class QLLMNetwork(type):
    def __call__(cls, agents_q, global_state):
        return agents_q.sum(dim=-1, keepdim=True)
