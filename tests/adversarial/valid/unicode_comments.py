# expect: accepted
# tasks: matrix_climbing
# style: unicode in comments and docstrings (Greek, arrows, math)
import torch


def QLLMNetwork(agents_q, global_state):
    """Q_tot = Σ_i w_i · Q_i with w_i ∈ (0.5, 1.5) — monotone ✓."""
    # α → a state-dependent gain; β = 0.5 (fixed)
    alpha = torch.sigmoid(global_state.sum(dim=-1, keepdim=True))  # [B, 1] ∈ (0, 1)
    return (0.5 + alpha) * agents_q.sum(dim=-1, keepdim=True)
