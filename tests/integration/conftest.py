"""Fixtures shared by the integration tests."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.support.collector import Processes


@pytest.fixture
def processes() -> Iterator[Processes]:
    """The Collectors and bridges a test starts; what still runs is killed after the test."""
    started = Processes()
    yield started
    started.close()
