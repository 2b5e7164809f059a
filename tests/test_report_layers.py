"""The conv section's per-layer times (bench/report/layers.py): roles, the cut networks and the
records."""

import numpy as np
import pytest
from test_sparse_conv import mobilenet_like

from bench.report.layers import ROLES, cut, layer_role, layer_time_records
from sparsenet import convert, prune
from sparsenet.testing import assert_forward_close


def test_roles_follow_the_structure(rng):
    net = mobilenet_like(rng)
    assert [layer_role(net, i) for i in range(len(net.layers))] == [
        "stem conv", "1x1 expand", "depthwise", "1x1 project", "1x1 expand", "depthwise", "1x1 project",
        "depthwise", "other conv", "pooling", "classifier"]
    assert set(layer_role(net, i) for i in range(len(net.layers))) <= set(ROLES)


def test_cut_networks_run_in_every_conv_format_and_end_in_the_whole(rng):
    """A cut after a residual block keeps its add; the last cut is the network itself."""
    masked = prune(mobilenet_like(rng), "weight", 0.7)
    x = rng.standard_normal((5, masked.net.widths[0])).astype(np.float32)
    for k in (1, 4, 7, len(masked.net.layers)):
        part = cut(masked, k)
        assert part.net.layers == masked.net.layers[:k]
        assert_forward_close(convert(part, "sparse_conv")(x), convert(part, "dense")(x))
    assert_forward_close(convert(cut(masked, len(masked.net.layers)), "dense")(x), convert(masked, "dense")(x))


def test_layers_add_up_to_the_whole_network(rng):
    net = mobilenet_like(rng)
    x = rng.standard_normal((3, net.widths[0])).astype(np.float32)
    recs = layer_time_records("toy", net, x, (0.0, 0.9), (1, 3), rounds=3, progress=False)
    assert len(recs) == 2 * 2 * 2 * len(net.layers)
    assert {r["format"] for r in recs} == {"dense", "sparse_conv"}
    for key in {(r["sparsity"], r["batch"], r["format"]) for r in recs}:
        group = sorted((r for r in recs if (r["sparsity"], r["batch"], r["format"]) == key), key=lambda r: r["layer"])
        assert sum(r["median_s"] for r in group) == pytest.approx(group[-1]["whole_s"])
        assert all(r["whole_s"] > 0 for r in group)
    masked = prune(net, "weight", 0.9)
    kept = {r["layer"]: r["kept"] for r in recs if r["sparsity"] == 0.9}
    assert kept == {i: int(m.sum()) for i, m in enumerate(masked.masks.weight)}
