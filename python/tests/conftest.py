"""Shared fixtures: the repository, the datasets, the classify binary."""

import os
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="session")
def repo() -> Path:
    return REPO


@pytest.fixture(scope="session")
def datasets() -> Path:
    """The shared datasets ($SKYPE_DPI_DATASETS or ../shared/datasets);
    missing datasets fail the run under CI=true and skip otherwise."""
    d = Path(os.environ.get("SKYPE_DPI_DATASETS", REPO / ".." / "shared" / "datasets"))
    if not (d / "ndpi").is_dir():
        if os.environ.get("CI") == "true":
            pytest.fail(f"the datasets are missing at {d} (set SKYPE_DPI_DATASETS)")
        pytest.skip(f"the datasets are missing at {d} (set SKYPE_DPI_DATASETS)")
    return d


@pytest.fixture(scope="session")
def classify_bin() -> Path:
    """The classify example, built by cargo if needed."""
    b = os.environ.get("SKYPE_DPI_CLASSIFY")
    if b:
        return Path(b)
    subprocess.run(
        ["cargo", "build", "--release", "--quiet", "--example", "classify"], cwd=REPO, check=True
    )
    return REPO / "target" / "release" / "examples" / "classify"
