"""Versions and hashes recorded in every manifest and run directory."""

from __future__ import annotations

import hashlib
import importlib.metadata
import platform
import os
import sys

_PACKAGES = ("tfcaf", "torch", "RestrictedPython", "numpy", "hypothesis", "jax", "jaxmarl", "openai", "xllamacpp", "jinja2")


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


def package_version(name: str) -> str | None:
    """The installed version of a distribution, or None."""
    try:
        return importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return None


_SHA_MEMO: dict[tuple[str, int, int], str] = {}


def file_sha256(path: "str | os.PathLike", cache_dir: "str | os.PathLike | None" = None) -> str:
    """sha256 of a (large) file, computed once: memoised per process and, with `cache_dir`, kept in
    `<cache_dir>/sha256.json` keyed by the real path, size and mtime (a changed file is hashed again)."""
    import json
    from pathlib import Path

    real = Path(path).resolve()
    st = real.stat()
    key = (str(real), st.st_size, st.st_mtime_ns)
    if key in _SHA_MEMO and not cache_dir:
        return _SHA_MEMO[key]
    table: dict = {}
    cache = Path(cache_dir) / "sha256.json" if cache_dir else None
    name = f"{key[0]}|{key[1]}|{key[2]}"
    if cache is not None and cache.is_file():
        try:
            table = json.loads(cache.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            table = {}
        if isinstance(table, dict) and isinstance(table.get(name), str) and len(table[name]) == 64:
            _SHA_MEMO[key] = table[name]
            return table[name]
    value = _SHA_MEMO.get(key)
    if value is None:  # a value memoised earlier without a cache folder is still recorded in this one
        digest = hashlib.sha256()
        with open(real, "rb") as fh:
            for block in iter(lambda: fh.read(1 << 20), b""):
                digest.update(block)
        value = digest.hexdigest()
    _SHA_MEMO[key] = value
    if cache is not None:
        from tfcaf.store import write_atomic

        table = table if isinstance(table, dict) else {}
        table[name] = value
        write_atomic(cache, json.dumps(table, indent=1, sort_keys=True))
    return value
