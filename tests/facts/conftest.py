"""Fixtures for the facts tests (helpers live in facts_testdata, a name no other conftest shadows)."""

import pytest
from facts_testdata import points


@pytest.fixture
def make_points():
    return points
