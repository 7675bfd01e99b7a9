"""Versions and hashes recorded in every manifest and run directory."""

from __future__ import annotations

import hashlib
import importlib.metadata
import platform
import sys

_PACKAGES = ("tfcaf", "torch", "RestrictedPython", "numpy", "hypothesis", "jax", "jaxmarl", "openai", "xllamacpp")


def versions() -> dict[str, str]:
    """Python and the versions of the packages that decide a result (absent ones are skipped)."""
    out = {"python": sys.version.split()[0], "platform": platform.platform()}
    for name in _PACKAGES:
        try:
            out[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            pass
    return out


def sha256_text(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()
