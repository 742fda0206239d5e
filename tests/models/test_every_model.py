"""Every registered model: build, one fit step, .keras round trip, export smoke test."""

import pytest

from kerasfuse.models import MODELS
from tests.helpers import run_model_test


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(MODELS))
def test_registered_model(name, tmp_path):
    reloaded = run_model_test(name, export_dir=str(tmp_path))
    assert reloaded.model_name == name
