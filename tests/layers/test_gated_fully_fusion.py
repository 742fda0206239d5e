"""GFF fusion layers against NumPy: eq. (5) (simultaneous and sequential), the ablation
fusions (eqs. 2-4, gated FPN) and the Dense Feature Pyramid (eq. 6)."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from kerasfuse.layers import (
    AdditionFusion,
    ConcatFusion,
    DenseFeaturePyramid,
    FPNFusion,
    GatedFPNFusion,
    GatedFullyFusion,
)
from tests.helpers import finite_difference_gradient, run_layer_test

SIZES = (8, 4, 4, 2)  # res2 at stride 4, res3/res4 at 8, a coarser top level


def np_resize(x, h, w, align_corners=False):
    """Bilinear resize with half-pixel centres (align_corners=False), no antialiasing, or
    with corner pixels aligned (source position i * (n_in - 1) / (n_out - 1))."""
    b, hi, wi, c = x.shape

    def axis(n_out, n_in):
        if align_corners:
            src = np.arange(n_out) * ((n_in - 1) / max(n_out - 1, 1))
        else:
            src = np.maximum((np.arange(n_out) + 0.5) * n_in / n_out - 0.5, 0.0)
        i0 = np.floor(src).astype(int)
        i1 = np.minimum(i0 + 1, n_in - 1)
        return i0, i1, src - i0

    out = np.zeros((b, h, w, c))
    r0, r1, fr = axis(h, hi)
    c0, c1, fc = axis(w, wi)
    for i in range(h):
        for j in range(w):
            top = x[:, r0[i], c0[j]] * (1 - fc[j]) + x[:, r0[i], c1[j]] * fc[j]
            bottom = x[:, r1[i], c0[j]] * (1 - fc[j]) + x[:, r1[i], c1[j]] * fc[j]
            out[:, i, j] = top * (1 - fr[i]) + bottom * fr[i]
    return out


def sigmoid(t):
    return 1.0 / (1.0 + np.exp(-t))


def levels(channels=3, batch=2, seed=0, sizes=SIZES):
    rng = np.random.RandomState(seed)
    return [rng.randn(batch, s, s, channels) for s in sizes]


def gates_for(xs, channels=1, seed=1):
    """Known gate maps in (0, 1), one per level, at each level's size."""
    rng = np.random.RandomState(seed)
    return [rng.uniform(0.05, 0.95, x.shape[:3] + (channels,)) for x in xs]


def f32(arrays):
    return [a.astype("float32") for a in arrays]


def np_gff(xs, gates, sequential, align_corners=False):
    """Paper eq. (5); sequential: level l reads the already-fused levels i < l."""
    current = [x.copy() for x in xs]
    fused = []
    for n, x in enumerate(xs):
        sources = current if sequential else xs
        h, w = x.shape[1:3]
        total = sum(np_resize(gates[i] * sources[i], h, w, align_corners)
                    for i in range(len(xs)) if i != n)
        out = (1 + gates[n]) * x + (1 - gates[n]) * total
        fused.append(out)
        current[n] = out
    return fused


@pytest.mark.parametrize("sequential", [False, True])
@pytest.mark.parametrize("gate_channels", [1, 3])
def test_gff_matches_equation_5(sequential, gate_channels):
    xs = levels()
    gates = gates_for(xs, gate_channels)
    fused = GatedFullyFusion(sequential=sequential)(*f32(xs), *f32(gates))
    for got, want in zip(fused, np_gff(xs, gates, sequential)):
        np.testing.assert_allclose(np.asarray(got), want, atol=1e-4, rtol=1e-4)


def test_gff_reference_mode_matches_numpy():
    """The published GFFNet head's fusion (network/gffnets.py): sequential, per-channel
    gates, align_corners=True resizes, at sizes that are not multiples of each other."""
    xs = levels(sizes=(9, 5, 3))
    gates = gates_for(xs, 3)
    fused = GatedFullyFusion(sequential=True, align_corners=True)(*f32(xs), *f32(gates))
    want = np_gff(xs, gates, sequential=True, align_corners=True)
    for got, expected in zip(fused, want):
        np.testing.assert_allclose(np.asarray(got), expected, atol=1e-4, rtol=1e-4)
    half_pixel = np_gff(xs, gates, sequential=True)
    assert not np.allclose(want[0], half_pixel[0], atol=1e-3)


def test_sequential_differs_from_simultaneous():
    xs, gates = f32(levels()), f32(gates_for(levels()))
    a = GatedFullyFusion()(*xs, *gates)
    b = GatedFullyFusion(sequential=True)(*xs, *gates)
    np.testing.assert_allclose(np.asarray(a[0]), np.asarray(b[0]), atol=1e-6)  # l=1 same
    assert not np.allclose(np.asarray(a[-1]), np.asarray(b[-1]))


def test_gff_hand_computed_two_levels():
    x1, x2 = np.full((1, 1, 1, 1), 2.0, "float32"), np.full((1, 1, 1, 1), 5.0, "float32")
    g1, g2 = np.full((1, 1, 1, 1), 0.5, "float32"), np.full((1, 1, 1, 1), 0.75, "float32")
    y1, y2 = GatedFullyFusion()(x1, x2, g1, g2)
    assert float(np.asarray(y1).item()) == pytest.approx(1.5 * 2 + 0.5 * 0.75 * 5)
    assert float(np.asarray(y2).item()) == pytest.approx(1.75 * 5 + 0.25 * 0.5 * 2)


def test_gff_gradient_matches_finite_differences():
    xs = levels(channels=2, batch=1, seed=3, sizes=(4, 2, 2))
    gates = gates_for(xs, seed=7)
    layer = GatedFullyFusion(dtype="float64")
    probe = [np.random.RandomState(4).randn(*x.shape) for x in xs]

    def loss_of(first_and_gate):
        first, gate = first_and_gate[..., :2], first_and_gate[..., 2:]
        out = layer(first, *xs[1:], gate, *gates[1:])
        return float(sum(np.sum(np.asarray(o) * p) for o, p in zip(out, probe)))

    # Differentiate w.r.t. the finest level and its gate together.
    packed = np.concatenate([xs[0], gates[0]], axis=-1)
    var = tf.constant(packed)
    with tf.GradientTape() as tape:
        tape.watch(var)
        out = layer(var[..., :2], *[tf.constant(x) for x in xs[1:]], var[..., 2:],
                    *[tf.constant(g) for g in gates[1:]])
        value = tf.add_n([tf.reduce_sum(o * p) for o, p in zip(out, probe)])
    analytic = tape.gradient(value, var).numpy()
    # tf.image.resize computes in float32 even for float64 inputs: a wider step keeps
    # its rounding out of the difference quotient (the function is smooth).
    numeric = finite_difference_gradient(loss_of, packed, eps=1e-2)
    np.testing.assert_allclose(analytic, numeric, atol=1e-3, rtol=1e-3)


def test_ablation_fusions_match_numpy():
    xs = levels()
    f32 = [x.astype("float32") for x in xs]
    sizes = [x.shape[1] for x in xs]
    concat = ConcatFusion()(*f32)
    for got, s in zip(concat, sizes):
        want = np.concatenate([np_resize(x, s, s) for x in xs], axis=-1)
        np.testing.assert_allclose(np.asarray(got), want, atol=1e-5)
    added = AdditionFusion()(*f32)
    for got, s in zip(added, sizes):
        np.testing.assert_allclose(np.asarray(got), sum(np_resize(x, s, s) for x in xs),
                                   atol=1e-5)
    fpn = FPNFusion()(*f32)
    want = [xs[-1]]
    for x in reversed(xs[:-1]):
        want.insert(0, x + np_resize(want[0], x.shape[1], x.shape[2]))
    for got, w in zip(fpn, want):
        np.testing.assert_allclose(np.asarray(got), w, atol=1e-5)


def test_gated_fpn_matches_numpy():
    xs = levels()
    g = gates_for(xs)
    fused = GatedFPNFusion()(*f32(xs), *f32(g))
    want = [xs[-1]]
    for n in range(len(xs) - 2, -1, -1):
        h, w = xs[n].shape[1:3]
        want.insert(0, (1 + g[n]) * xs[n] + (1 - g[n]) * np_resize(g[n + 1] * want[0], h, w))
    for got, w in zip(fused, want):
        np.testing.assert_allclose(np.asarray(got), w, atol=1e-4, rtol=1e-4)


def test_dense_feature_pyramid_matches_numpy():
    rng = np.random.RandomState(5)
    context = rng.randn(2, 2, 2, 3)
    xs = levels(channels=2, seed=6, sizes=(8, 4, 4))
    layer = DenseFeaturePyramid(channels=2, kernel_size=1)
    layer.build([context.shape] + [x.shape for x in xs])
    params = []
    for conv, bn in zip(layer.convs, layer.bns):
        kernel = rng.randn(*conv.kernel.shape)
        stats = (rng.uniform(0.5, 1.5, 2), rng.uniform(-0.2, 0.2, 2),
                 rng.uniform(-0.3, 0.3, 2), rng.uniform(0.5, 2.0, 2))
        conv.kernel.assign(kernel)
        for var, value in zip((bn.gamma, bn.beta, bn.moving_mean, bn.moving_variance),
                              stats):
            var.assign(value)
        params.append((kernel[0, 0], stats))
    got = np.asarray(layer(context.astype("float32"), *[x.astype("float32") for x in xs],
                           training=False))
    pyramid = [context]
    for x, (kernel, (gamma, beta, mean, var)) in zip(reversed(xs), params):
        h, w = x.shape[1:3]
        dense = np.concatenate([np_resize(y, h, w) for y in pyramid] + [x], axis=-1)
        y = gamma * (dense @ kernel - mean) / np.sqrt(var + 1e-5) + beta
        pyramid.append(np.maximum(y, 0.0))
    want = np.concatenate([np_resize(y, 8, 8) for y in pyramid], axis=-1)
    assert got.shape == (2, 8, 8, 3 + 3 * 2)
    np.testing.assert_allclose(got, want, atol=1e-4, rtol=1e-4)


# ---------------------------------------------------------------- layer contracts


def _inputs():
    return [x.astype("float32") for x in levels(channels=4, sizes=(8, 4, 4))]


def _shapes(channels=4):
    return [(2, 8, 8, channels), (2, 4, 4, channels), (2, 4, 4, channels)]


def test_gated_fully_fusion_contract():
    xs = _inputs()
    run_layer_test(GatedFullyFusion, {}, xs + f32(gates_for(xs)),
                   expected_output_shape=_shapes(), expected_num_trainable_weights=0)


def test_gated_fully_fusion_sequential_per_channel_contract():
    xs = _inputs()
    run_layer_test(GatedFullyFusion, {"sequential": True}, xs + f32(gates_for(xs, 4)),
                   expected_output_shape=_shapes(), expected_num_trainable_weights=0)


def test_gated_fully_fusion_align_corners_contract():
    xs = _inputs()
    run_layer_test(GatedFullyFusion, {"sequential": True, "align_corners": True},
                   xs + f32(gates_for(xs, 4)), expected_output_shape=_shapes(),
                   expected_num_trainable_weights=0)


def test_gated_fpn_fusion_contract():
    xs = _inputs()
    run_layer_test(GatedFPNFusion, {}, xs + f32(gates_for(xs)),
                   expected_output_shape=_shapes(), expected_num_trainable_weights=0)


@pytest.mark.parametrize("cls,channels", [(ConcatFusion, 12), (AdditionFusion, 4),
                                          (FPNFusion, 4)])
def test_weightless_fusion_contracts(cls, channels):
    run_layer_test(cls, {}, _inputs(), expected_output_shape=_shapes(channels),
                   expected_num_trainable_weights=0)


def test_dense_feature_pyramid_contract():
    context = np.random.RandomState(0).randn(2, 4, 4, 6).astype("float32")
    run_layer_test(DenseFeaturePyramid, {"channels": 5, "kernel_size": 3},
                   [context] + _inputs(), expected_output_shape=(2, 8, 8, 6 + 3 * 5),
                   expected_num_trainable_weights=9)


@pytest.mark.parametrize("make,match", [
    (lambda: DenseFeaturePyramid(kernel_size=5), "kernel_size must be 1 or 3, got 5"),
    (lambda: DenseFeaturePyramid(channels=0), "channels must be an integer >= 1, got 0"),
])
def test_bad_arguments(make, match):
    with pytest.raises(ValueError, match=match):
        make()


def test_bad_levels():
    x = np.zeros((1, 4, 4, 3), "float32")
    g = np.zeros((1, 4, 4, 1), "float32")
    with pytest.raises(ValueError, match="L levels followed by their L gates, got 3 inputs"):
        GatedFullyFusion()(x, x, g)
    with pytest.raises(ValueError, match="at least 2 feature levels, got 1"):
        GatedFPNFusion()(x, g)
    with pytest.raises(ValueError, match=r"same channels .* got \[3, 5\]"):
        AdditionFusion()(x, np.zeros((1, 2, 2, 5), "float32"))
    with pytest.raises(ValueError, match=r"gate 1 must have 1 or .* \(3\), got 2"):
        GatedFullyFusion()(x, x, g, np.zeros((1, 4, 4, 2), "float32"))
    with pytest.raises(ValueError, match=r"gate 0 must be .* size \(4, 4\), got shape"):
        GatedFullyFusion()(x, x, np.zeros((1, 2, 2, 1), "float32"), g)
    with pytest.raises(ValueError, match="context map and at least one level"):
        DenseFeaturePyramid()(x)


def test_reloaded_model_calls_multi_level_layers_with_one_list(tmp_path):
    inputs = [keras.Input((s, s, c)) for c in (2, 1) for s in (8, 4)]
    model = keras.Model(inputs, GatedFullyFusion()(*inputs))
    path = str(tmp_path / "gff.keras")
    model.save(path)
    xs = f32(levels(channels=2, sizes=(8, 4)))
    xs += f32(gates_for(xs))
    again = keras.saving.load_model(path)
    for a, b in zip(model(xs), again(xs)):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), atol=1e-6)
