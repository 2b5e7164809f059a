"""The conv section's per-layer times (bench/report/layers.py): roles, the cut networks and the
records."""

import numpy as np
import pytest
from test_sparse_conv import mobilenet_like

from bench.report.layers import ROLES, cut, layer_role, layer_time_records, paired_differences
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


def test_records_per_layer_with_the_cut_networks_times(rng):
    net = mobilenet_like(rng)
    x = rng.standard_normal((3, net.widths[0])).astype(np.float32)
    recs = layer_time_records("toy", net, x, (0.0, 0.9), (1, 3), rounds=3, progress=False)
    assert len(recs) == 2 * 2 * 2 * len(net.layers)
    assert {r["format"] for r in recs} == {"dense", "sparse_conv"}
    for key in {(r["sparsity"], r["batch"], r["format"]) for r in recs}:
        group = sorted((r for r in recs if (r["sparsity"], r["batch"], r["format"]) == key), key=lambda r: r["layer"])
        assert [r["layer"] for r in group] == list(range(len(net.layers)))
        assert all(r["whole_s"] > 0 for r in group)
        # layer 0's paired difference is with nothing: its cut network's own median. The others are
        # medians of differences within rounds (test_paired_differences_cancel_slow_phases); how
        # near their sum comes to the whole network depends on the machine's noise, so not asserted
        assert group[0]["median_s"] == group[0]["whole_s"]
    masked = prune(net, "weight", 0.9)
    kept = {r["layer"]: r["kept"] for r in recs if r["sparsity"] == 0.9}
    assert kept == {i: int(m.sum()) for i, m in enumerate(masked.masks.weight)}


def test_paired_differences_cancel_slow_phases():
    """Three layers of 1, 2 and 4 ms and a slow phase (+30 ms a call) that starts in round 0 and
    spreads: cut 0 slow in round 0, cut 1 in rounds 0-1, cut 2 in rounds 0-2. Differences of the
    cut networks' medians over rounds charge layer 2 the phase (34 ms); paired within a round,
    the median of the differences does not."""
    layer = [1e-3, 2e-3, 4e-3]
    times = [[c + (30e-3 if r <= k else 0.0) for r in range(5)] for k, c in enumerate(np.cumsum(layer))]
    assert paired_differences(times) == pytest.approx(layer)
    medians = [float(np.median(t)) for t in times]
    assert medians[2] - medians[1] == pytest.approx(34e-3)
