# expect: accepted
# tasks: matrix_climbing
# style: a helper with an underscore parameter called by keyword
import torch


def _mix(q, _scale=1.0):
    return q.sum(dim=-1, keepdim=True) * _scale


def QLLMNetwork(agents_q, global_state):
    gain = 1.0 + 0.1 * torch.tanh(global_state.mean(dim=-1, keepdim=True))  # [B, 1]
    return gain * _mix(agents_q, _scale=1.0)
