"""Composite layers hand their dtype policy to every sublayer (keras-hub convention), so a
layer built with ``dtype="mixed_float16"`` under a float32 global policy computes in float16
throughout instead of silently mixing policies."""

import keras
import numpy as np
import pytest

from kerasfuse.layers import ASPP, BodyGeneration, EdgePreservation, PyramidPooling

CASES = {
    "aspp": (lambda: ASPP(channels=4, rates=(1, 2, 3), dtype="mixed_float16"),
             [np.ones((1, 8, 8, 3), "float32")]),
    "pyramid_pooling": (lambda: PyramidPooling(bins=(1, 2), channels=4,
                                               dtype="mixed_float16"),
                        [np.ones((1, 8, 8, 4), "float32")]),
    "body_generation": (lambda: BodyGeneration(dtype="mixed_float16"),
                        [np.ones((1, 16, 16, 4), "float32")]),
    "edge_preservation": (lambda: EdgePreservation(dtype="mixed_float16"),
                          [np.ones((1, 8, 8, 4), "float32"), np.ones((1, 8, 8, 4), "float32"),
                           np.ones((1, 16, 16, 2), "float32")]),
}
# Float32 on purpose: the flow regressor keeps its own policy (sub-pixel flow precision).
FLOAT32_SUBLAYERS = {"flow_conv"}


@pytest.mark.parametrize("name", sorted(CASES))
def test_sublayers_inherit_the_dtype_policy(name):
    assert keras.config.dtype_policy().name == "float32"
    make, inputs = CASES[name]
    layer = make()
    layer(*inputs)
    sublayers = [s for s in layer._flatten_layers(include_self=False, recursive=True)]
    assert sublayers, f"{name} has no sublayers"
    policies = {s.name: s.dtype_policy.name for s in sublayers
                if s.name not in FLOAT32_SUBLAYERS}
    assert set(policies.values()) == {"mixed_float16"}, policies
