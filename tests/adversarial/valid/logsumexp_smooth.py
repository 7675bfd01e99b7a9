# expect: accepted
# tasks: *
"""A smooth maximum (log-sum-exp) blended with the mean: monotone in every Q_i."""
import math

import torch


def QLLMNetwork(agents_q, global_state):
    n = agents_q.shape[1]
    smooth_max = torch.logsumexp(agents_q, dim=1, keepdim=True) - math.log(n)
    return 0.5 * agents_q.mean(dim=1, keepdim=True) * n + 0.5 * smooth_max
