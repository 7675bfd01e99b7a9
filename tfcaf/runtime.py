"""Process-wide torch settings, applied once by every command that runs torch."""

from __future__ import annotations

import os


def configure_torch(threads: int | None = None, device: str = "cpu") -> None:
    """Set torch's intra-op threads (default 1 on CPU: on a shared 2-core machine 2 threads ran
    10-80x slower under load) and keep JAX from preallocating a GPU it shares with torch."""
    import torch

    if threads is None:
        threads = int(os.environ.get("TFCAF_THREADS", "1"))
    if device == "cpu" or not device.startswith("cuda"):
        torch.set_num_threads(max(1, threads))
    os.environ.setdefault("XLA_PYTHON_CLIENT_PREALLOCATE", "false")


def resolve_device(device: str) -> str:
    """'auto' -> 'cuda' when available else 'cpu'; otherwise the name, checked."""
    import torch

    from tfcaf.errors import UsageError

    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise UsageError(f"--device {device} was asked for, but torch sees no CUDA device. Use --device cpu.")
    if device != "cpu" and not device.startswith("cuda"):
        raise UsageError(f"unknown device '{device}': use cpu, cuda, cuda:N or auto.")
    return device
