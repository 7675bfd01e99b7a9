# expect: accepted
# tasks: lbf_2s-8x8-2p-2f-coop
# style: from-imports of torch functions and math
from math import log
from torch import sigmoid, sum as tsum

SCALE = 0.6931471805599453  # log(2)


def QLLMNetwork(agents_q, global_state):
    gate = sigmoid(global_state[:, :agents_q.shape[1]])  # [B, N]
    return tsum((1.0 + SCALE * gate + 0.0 * log(2.0)) * agents_q, dim=1, keepdim=True)
