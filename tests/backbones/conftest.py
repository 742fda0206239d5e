"""The tiny synthetic TFRecords of the training tests, for the backbone tests that train."""

from tests.training.conftest import tiny_data  # noqa: F401 (a fixture, re-exported)
