# expect: accepted
# tasks: smac_3m
# style: typed, docstring with shapes, shape assert with an f-string message
import torch


def QLLMNetwork(agents_q: torch.Tensor, global_state: torch.Tensor) -> torch.Tensor:
    """Health-weighted value decomposition.

    Args:
        agents_q: [B, N] per-agent Q values.
        global_state: [B, S] global state.
    Returns:
        q_tot: [B, 1].
    """
    n_agents = agents_q.shape[1]
    assert global_state.shape[0] == agents_q.shape[0], f"batch mismatch: {global_state.shape} vs {agents_q.shape}"
    health: torch.Tensor = global_state[:, :n_agents].clamp(min=0.0, max=1.0)  # [B, N]
    weights = 0.5 + health  # [B, N] in [0.5, 1.5]
    return (weights * agents_q).sum(dim=1, keepdim=True)
