"""tflite_runner: every core by default, --threads / num_threads overrides, bad counts fail."""

import os

import pytest

from kerasfuse.export import default_num_threads, tflite_runner


class _RecordingInterpreter:
    calls = []

    def __init__(self, model_content=None, model_path=None, num_threads=None):
        self.calls.append(num_threads)

    def get_signature_runner(self, name):
        return lambda images: {"images": images}


@pytest.fixture
def recorded(monkeypatch):
    import ai_edge_litert.interpreter as litert

    _RecordingInterpreter.calls = []
    monkeypatch.setattr(litert, "Interpreter", _RecordingInterpreter)
    return _RecordingInterpreter.calls


def test_default_is_every_core_this_process_may_use(recorded):
    tflite_runner(b"model")
    assert recorded == [len(os.sched_getaffinity(0))]
    assert default_num_threads() == len(os.sched_getaffinity(0))


def test_explicit_thread_count_overrides(recorded):
    tflite_runner("model.tflite", num_threads=1)
    assert recorded == [1]


@pytest.mark.parametrize("bad", [0, -2, 1.5, True])
def test_bad_thread_count_is_named(recorded, bad):
    with pytest.raises(ValueError, match=f"got {bad!r}"):
        tflite_runner(b"model", num_threads=bad)
    assert recorded == []
