"""The conv section's per-layer times (bench/report/layers.py): roles, the captured activations
and the records."""

import numpy as np
from test_sparse_conv import mobilenet_like

from bench.report.layers import ROLES, _one_layer, layer_inputs, layer_role, layer_time_records
from sparsenet import convert, prune
from sparsenet.testing import assert_forward_close


def test_roles_follow_the_structure(rng):
    net = mobilenet_like(rng)
    assert [layer_role(net, i) for i in range(len(net.layers))] == [
        "stem conv", "1x1 expand", "depthwise", "1x1 project", "1x1 expand", "depthwise", "1x1 project",
        "depthwise", "other conv", "pooling", "classifier"]
    assert set(layer_role(net, i) for i in range(len(net.layers))) <= set(ROLES)


def test_captured_inputs_rebuild_the_network_output(rng):
    """Layer by layer, with the residual adds put back, the captured inputs give the whole
    network's logits: each layer is timed on what it sees in the real network."""
    masked = prune(mobilenet_like(rng), "weight", 0.7)
    x = rng.standard_normal((5, masked.net.widths[0])).astype(np.float32)
    inputs = layer_inputs(masked, x)
    assert len(inputs) == len(masked.net.layers) and inputs[0] is x
    for i, layer in enumerate(masked.net.layers[:-1]):
        assert inputs[i + 1].shape == (5, layer.n_out)
    last = convert(_one_layer(masked, len(inputs) - 1), "dense")(inputs[-1])
    assert_forward_close(last, convert(masked, "dense")(x))
    residual = next(i for i, layer in enumerate(masked.net.layers) if getattr(layer, "residual_from", None))
    assert np.abs(inputs[residual + 1] - convert(_one_layer(masked, residual), "dense")(inputs[residual])).max() > 0


def test_one_record_per_layer_format_sparsity_and_batch(rng):
    net = mobilenet_like(rng)
    x = rng.standard_normal((3, net.widths[0])).astype(np.float32)
    recs = layer_time_records("toy", net, x, (0.0, 0.9), (1, 3), rounds=2, progress=False)
    assert len(recs) == 2 * 2 * 2 * len(net.layers)
    assert {r["format"] for r in recs} == {"dense", "sparse_conv"}
    assert all(r["median_s"] > 0 and r["iqr_s"] >= 0 for r in recs)
    masked = prune(net, "weight", 0.9)
    kept = {r["layer"]: r["kept"] for r in recs if r["sparsity"] == 0.9}
    assert kept == {i: int(m.sum()) for i, m in enumerate(masked.masks.weight)}
