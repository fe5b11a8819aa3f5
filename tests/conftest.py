"""Fixtures shared by the test modules (helpers live in :mod:`tests.support`)."""

from __future__ import annotations

import pytest


@pytest.fixture
def lab(hcasim_lab):  # type: ignore[no-untyped-def]
    """The default lab (shorter name)."""
    return hcasim_lab
