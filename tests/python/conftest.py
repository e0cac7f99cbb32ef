"""Shared fixtures of the levattn Python tests: the test directory on sys.path (for reference.py and
inputs.py) and a seeded Generator per test. LEVATTN_TEST_SEED=<int> draws other data (default 0)."""
import os
import sys

import pytest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from inputs import rng_for  # noqa: E402


@pytest.fixture
def rng(request):
    """A numpy Generator seeded from the test's module and name (with parameters): fresh, reproducible data
    per case, the same from any working directory."""
    return rng_for(os.environ.get("LEVATTN_TEST_SEED", "0"), request.node.module.__name__, request.node.name)
