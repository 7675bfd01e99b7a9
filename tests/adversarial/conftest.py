"""Shared Vetters (pre-warmed fork servers) for the corpus: attacks get a short wall clock (several
attacks are meant to hit it), valid functions a generous one (a shared 2-core machine can be slow)."""

from __future__ import annotations

import pytest


@pytest.fixture(scope="session")
def vetter():
    from tfcaf.sandbox.vetting import Vetter, VetOptions

    with Vetter(VetOptions(timeout_s=20.0, cpu_s=30)) as v:
        yield v


@pytest.fixture(scope="session")
def valid_vetter():
    from tfcaf.sandbox.vetting import Vetter, VetOptions

    with Vetter(VetOptions(timeout_s=180.0, cpu_s=180, max_forward_ms=10_000.0)) as v:
        yield v
