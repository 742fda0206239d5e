"""TerminateOnNaN stops with a message saying what to try; ProgressBar starts at the
restored step."""

import keras
import numpy as np

from kerasfuse.training import ProgressBar, TerminateOnNaN


def _model():
    x = keras.Input((2,))
    model = keras.Model(x, keras.layers.Dense(1)(x))
    model.compile(optimizer=keras.optimizers.SGD(0.5), loss="mse")
    return model


def test_terminate_on_nan_stops_training_with_a_clear_message(capsys):
    model = _model()
    guard = TerminateOnNaN()
    guard.set_model(model)
    guard.on_train_batch_end(0, {"loss": 1.25})
    assert not model.stop_training and guard.message is None
    guard.on_train_batch_end(1, {"loss": float("nan")})
    assert model.stop_training
    assert guard.message.startswith("loss became nan at step 0 (lr 0.5); training stopped.")
    assert "optimizer.clipnorm" in guard.message
    assert "TerminateOnNaN: loss became nan" in capsys.readouterr().err


def test_terminate_on_nan_also_catches_infinity():
    model = _model()
    guard = TerminateOnNaN()
    guard.set_model(model)
    guard.on_train_batch_end(0, {"loss": float("inf")})
    assert model.stop_training and "loss became inf" in guard.message


def test_progress_bar_reports_a_resumed_step(capsys):
    model = _model()
    model.fit(np.zeros((4, 2), "float32"), np.zeros((4, 1), "float32"), batch_size=2,
              epochs=1, verbose=0)
    bar = ProgressBar(total_steps=10, enabled=False)
    bar.set_model(model)
    bar.on_train_begin()
    bar.on_train_end()
    assert bar.start == 2
    assert "resuming from step 2" in capsys.readouterr().out
