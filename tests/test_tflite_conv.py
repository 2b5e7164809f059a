"""The TFLite engines on conv networks (tflite, tflite_sparse) against the float64 reference and
the ``dense`` format, and what the registry offers for conv networks.

A TFLite conversion costs about a second (plus TensorFlow's import), so one small network carries
the edge cases: odd sizes and channel counts, a residual add of the network input
(``residual_from=-1``), a stride-2 'same' convolution with asymmetric pads, residual adds of
earlier outputs, a stride-2 depthwise layer padded (0, 1), a 1x1 layer without bias, and either
pooling or a classifier on the flattened spatial output. Four conversions in all.
"""

from __future__ import annotations

import numpy as np
import pytest

from sparsenet import FORMATS, Layer, Network, convert, prune
from sparsenet.formats import describe, formats_for
from sparsenet.layers import Conv2D, DepthwiseConv2D, GlobalAvgPool
from sparsenet.layers._spatial import same_pads
from sparsenet.testing import assert_forward_close

import naive

CONV_KINDS = frozenset({"conv2d", "depthwise_conv2d", "global_avg_pool", "dense"})
CONV_ACTIVATIONS = frozenset({"relu6", "linear", "softmax"})


def needs(name: str) -> None:
    cls = FORMATS[name]
    if not cls.available():
        pytest.skip(cls.unavailable_reason())


def conv_net(rng, pool: bool = True) -> Network:
    """7x6x3 in; every layer kind and every geometry the TFLite graph has to get right."""
    def w(*shape):
        return (rng.standard_normal(shape) / np.sqrt(int(np.prod(shape[1:])))).astype(np.float32)

    def b(n):
        return (0.3 * rng.standard_normal(n)).astype(np.float32)

    hw = (7, 6)
    layers = [
        Conv2D(w(7, 1, 1, 3), b(7), "relu6", hw),  # 0
        Conv2D(w(3, 1, 1, 7), b(3), "linear", hw, residual_from=-1),  # 1: + the network input
        Conv2D(w(5, 3, 3, 3), b(5), "relu6", hw, stride=2, pads=same_pads(hw, (3, 3), 2)),  # 2: pads (1, 1, 0, 1)
    ]
    h = layers[-1].output_shape[:2]
    layers += [
        Conv2D(w(11, 1, 1, 5), None, "relu6", h),  # 3
        DepthwiseConv2D(w(11, 3, 3), b(11), "relu6", h, pads=(1, 1, 1, 1)),  # 4
        Conv2D(w(5, 1, 1, 11), b(5), "linear", h, residual_from=2),  # 5
        DepthwiseConv2D(w(5, 3, 3), b(5), "relu6", h, stride=2, pads=(0, 1, 0, 1)),  # 6
    ]
    h = layers[-1].output_shape[:2]
    layers.append(Conv2D(w(5, 1, 1, 5), b(5), "linear", h, residual_from=6))  # 7
    if pool:
        layers.append(GlobalAvgPool(layers[-1].output_shape))
    layers.append(Layer(w(4, layers[-1].n_out), b(4), "softmax"))
    return Network(tuple(layers))


@pytest.fixture(scope="module")
def built():
    """{case: (masked, forward)}, converted once per module."""
    rng = np.random.default_rng(21)
    cases = {"tflite-s0.00-pool": ("tflite", True, 0.0, False),
             "tflite-s0.50-flat": ("tflite", False, 0.5, True),
             "tflite_sparse-s0.95-pool": ("tflite_sparse", True, 0.95, True),
             "tflite-s0.95-pool": ("tflite", True, 0.95, True)}
    made, done = {}, {}

    def get(case):
        fmt, pool, sparsity, depthwise = cases[case]
        needs(fmt)
        if case not in done:
            key = (pool, sparsity, depthwise)
            if key not in made:
                made[key] = prune(conv_net(rng, pool), "weight", sparsity, "layer", include_depthwise=depthwise)
            done[case] = made[key], convert(made[key], fmt)
        return done[case]

    return get


@pytest.mark.parametrize("case", ["tflite-s0.00-pool", "tflite-s0.50-flat", "tflite_sparse-s0.95-pool"])
def test_tflite_runs_conv_networks_like_the_reference(rng, built, case):
    masked, forward = built(case)
    dense = convert(masked, "dense")
    for n_batch in (1, 5, 1):  # the input is resized both ways
        x = rng.standard_normal((n_batch, masked.net.widths[0])).astype(np.float32)
        y = forward(x)
        assert_forward_close(y, naive.forward_kinds(masked, x))
        assert_forward_close(y, dense(x))
    assert forward.nnz == sum(int(k.sum()) for k in masked.masks.weight)
    assert forward.sample_shape == masked.net.input_shape  # one NHWC image per sample, not a flat vector


def test_tflite_sparse_stores_sparse_tensors_and_computes_the_same(rng, built):
    """The EXPERIMENTAL_SPARSITY flatbuffer holds a DENSIFY op per sparse weight (on a network this
    small the sparse index arrays and the extra ops outweigh the zeros saved: MobileNetV2 shrinks
    5.6x); XNNPACK densifies them and runs the dense kernels, so both formats agree."""
    from sparsenet.formats.engines.tflite_sparse import op_names

    masked, sparse = built("tflite_sparse-s0.95-pool")
    same, dense = built("tflite-s0.95-pool")
    assert same is masked
    sparse_ops, dense_ops = op_names(sparse.model), op_names(dense.model)
    assert "DENSIFY" not in dense_ops and sparse_ops.count("DENSIFY") >= 3
    assert [op for op in sparse_ops if op != "DENSIFY"] == dense_ops
    x = rng.standard_normal((3, masked.net.widths[0])).astype(np.float32)
    assert_forward_close(sparse(x), dense(x))


def test_conv_networks_are_offered_the_tflite_float_formats():
    offered = formats_for(False, CONV_KINDS, CONV_ACTIVATIONS)
    for name in ("tflite", "tflite_sparse"):
        assert (name in offered) == FORMATS[name].available()
    assert "tflite_int8" not in offered  # its reference reads FULLY_CONNECTED ops only
    assert "tflite_sparse" not in formats_for(False) and "tflite_sparse" not in formats_for(True)
    assert ("tflite" in formats_for(False)) == FORMATS["tflite"].available()
    d = describe(FORMATS["tflite_sparse"])
    assert (d["kind"], d["computes"], d["engine"], d["saved_as"]) == ("engine", "dense", "ai-edge-litert", "dense")
    assert set(d["needs_kinds"]) == {"conv2d", "depthwise_conv2d"} and set(d["layer_kinds"]) == CONV_KINDS


def test_tflite_int8_refuses_conv_networks_before_converting(rng):
    masked = prune(conv_net(rng), "weight", 0.5)
    with pytest.raises(NotImplementedError, match=r"format 'tflite_int8' runs layer kinds \['dense'\]"):
        convert(masked, "tflite_int8")


def test_tflite_sparse_without_its_packages(monkeypatch, rng):
    cls = FORMATS["tflite_sparse"]
    monkeypatch.setattr(cls, "requires", ("sparsenet_missing_litert",))
    assert not cls.available()
    assert "tflite_sparse" not in formats_for(False, CONV_KINDS, CONV_ACTIVATIONS)
    with pytest.raises(ImportError, match=r"format 'tflite_sparse' needs the sparsenet_missing_litert package.*"
                                          r"pip install ai-edge-litert"):
        convert(prune(conv_net(rng), "weight", 0.5), "tflite_sparse")


def test_conversions_are_cached_by_geometry_and_format(rng, built, monkeypatch, tmp_path):
    """A MobileNetV2 takes seconds to convert, so each conversion is cached on disk; the key must
    tell apart networks with the same weights but another stride or padding, and the sparse
    conversion from the dense one."""
    import dataclasses

    from sparsenet.formats.engines.tflite import cached_conversion, conversion_key

    masked, forward = built("tflite-s0.95-pool")
    first = masked.net.layers[0]
    moved = dataclasses.replace(first, stride=first.stride % 2 + 1)  # same weights, another stride
    assert conversion_key(dataclasses.replace(masked, net=Network((moved,))), "tflite") != conversion_key(
        dataclasses.replace(masked, net=Network((first,))), "tflite")
    assert conversion_key(masked, "tflite") != conversion_key(masked, "tflite_sparse")
    calls = []
    for _ in range(2):
        model = cached_conversion(masked, "tflite", lambda: calls.append(1) or forward.model, cache_dir=tmp_path)
        assert model == forward.model
    assert len(calls) == 1 and len(list((tmp_path / "tflite").glob("*.tflite"))) == 1
