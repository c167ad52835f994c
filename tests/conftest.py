import os
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO.parent / "shared" / "data"


@pytest.fixture
def home(tmp_path):
    """A fresh, empty monitor home in a temporary folder."""
    from monitor.home import Home

    return Home.open(tmp_path / "home")


@pytest.fixture
def shared_data():
    if not SHARED_DATA.exists():
        pytest.fail(f"shared data not found at {SHARED_DATA}")
    return SHARED_DATA
