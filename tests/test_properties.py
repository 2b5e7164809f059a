"""Property tests (hypothesis, the deterministic profile of tests/conftest.py): pruning's
invariants and every registered format against the oracle, on random networks."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from sparsenet import FORMATS, PRUNERS, Layer, Network, convert, prune
from sparsenet.formats import auto
from sparsenet.testing import assert_forward_close

import naive


@st.composite
def networks(draw, max_layers=3, max_width=12, bias=None):
    widths = draw(st.lists(st.integers(1, max_width), min_size=3, max_size=max_layers + 1))  # >= 1 hidden layer
    seed = draw(st.integers(0, 2**32 - 1))
    with_bias = draw(st.booleans()) if bias is None else bias
    dtype = draw(st.sampled_from([np.float32, np.float64]))
    rng = np.random.default_rng(seed)
    layers = []
    for i, (n_in, n_out) in enumerate(zip(widths[:-1], widths[1:])):
        w = (rng.standard_normal((n_out, n_in)) / np.sqrt(n_in)).astype(dtype)
        b = (rng.standard_normal(n_out) * 0.1).astype(dtype) if with_bias else None
        layers.append(Layer(w, b, "linear" if i == len(widths) - 2 else "relu"))
    return Network(tuple(layers))


sparsities = st.floats(0.0, 0.99, allow_nan=False)


@given(net=networks(), sparsity=sparsities)
def test_weight_pruning_removes_exactly_the_smallest(net, sparsity):
    masked = prune(net, "weight", sparsity)
    for i in masked.pruned_layers:
        keep, w = masked.masks.weight[i], net.layers[i].weight
        assert (~keep).sum() == min(round(sparsity * w.size), w.size - 1)
        if (~keep).any():
            assert np.abs(w[~keep]).max() <= np.abs(w[keep]).min()
    for i in set(range(len(net.layers))) - set(masked.pruned_layers):
        assert masked.masks.weight[i].all()


@given(net=networks(bias=True), sparsity=sparsities)
def test_unit_pruning_removes_exactly_the_weakest_units(net, sparsity):
    masked = prune(net, "unit", sparsity)
    for i in masked.pruned_layers:
        keep, w = masked.masks.weight[i], net.layers[i].weight
        rows = keep.any(axis=1)
        assert (keep == rows[:, None]).all() and (masked.masks.bias[i] == rows).all()
        assert (~rows).sum() == min(round(sparsity * w.shape[0]), w.shape[0] - 1)
        norms = np.linalg.norm(w.astype(np.float64), axis=1)
        if (~rows).any():
            assert norms[~rows].max() <= norms[rows].min() * (1 + 1e-6)


@pytest.fixture(scope="module", autouse=True)
def _quick_auto():
    """auto's timing only picks a candidate (never changes the output): time it briefly."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(auto, "MEASURE_S", 0.0)
        mp.setattr(auto, "MEASURE_ROUNDS", 1)
        mp.setattr(auto, "SETTLE_S", 0.0)
        yield


@given(net=networks(), method=st.sampled_from(sorted(PRUNERS)), sparsity=sparsities,
       batch=st.sampled_from([1, 3, 17]), seed=st.integers(0, 1000))
def test_every_format_equals_the_oracle(net, method, sparsity, batch, seed):
    masked = prune(net, method, sparsity)
    x = np.random.default_rng(seed).random((batch, net.widths[0])).astype(net.dtype)
    expected = naive.forward(masked, x)
    # engines: test_engines.py; int8 formats (their own reference): test_int8_formats.py
    for name in sorted(f for f, cls in FORMATS.items()
                       if cls.kind != "engine" and not cls.quantized and not cls.needs_kinds
                       and np.dtype(net.dtype) in cls.dtypes):
        assert_forward_close(convert(masked, name)(x), expected)
