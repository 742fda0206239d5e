"""Shared fixtures for the pipelines tests: one tiny synthetic dataset per session."""

import pytest

from pipelines import build_synthetic


@pytest.fixture(scope="session")
def synthetic_dir(tmp_path_factory):
    """16 train / 4 val synthetic scenes of 64x64 in 2 + 1 shards (built once)."""
    out = tmp_path_factory.mktemp("synthetic")
    build_synthetic(out, train=16, val=4, image_size=(64, 64), seed=3, num_shards=2,
                    progress=False)
    return out
