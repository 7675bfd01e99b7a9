"""A mixer plugin: mean-VDN, q_tot = (1/N) sum_i Q_i (VDN rescaled so targets do not grow with N)."""

from __future__ import annotations

import torch
from torch import nn

from tfcaf.trainer.mixers import MixerSpec


class MeanVDNMixer(nn.Module):
    """agents_q [B, T, N], global_state [B, T, S] -> q_tot [B, T, 1]."""

    def forward(self, agents_q: torch.Tensor, global_state: torch.Tensor) -> torch.Tensor:
        return agents_q.mean(dim=-1, keepdim=True)  # [B, T, 1]


def register_mixers(register) -> None:
    """The `tfcaf.mixers` hook: call register(MixerSpec) once per mixer; build(card, config, device) -> module."""
    register(MixerSpec("vdn_mean", "example plugin: mean of agent Q values", lambda card, cfg, device: MeanVDNMixer(), False))
