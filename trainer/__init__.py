"""Trainer: value-decomposition MARL (QMIX-style) with built-in and approved credit-function mixers."""
