"""One shared Vetter (pre-warmed fork server) for the whole corpus."""

from __future__ import annotations

import pytest


@pytest.fixture(scope="session")
def vetter():
    from tfcaf.sandbox.vetting import Vetter, VetOptions

    with Vetter(VetOptions(timeout_s=20.0, cpu_s=30)) as v:
        yield v
