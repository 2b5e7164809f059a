import numpy as np
import pytest

from sparsenet import prune

import naive
from conftest import net_of, random_net


@pytest.mark.parametrize("sparsity", [0.0, 0.25, 0.4, 0.9, 0.99])
def test_magnitude_removes_exact_count_and_the_smallest(rng, sparsity):
    w0 = rng.standard_normal((30, 20)).astype(np.float32)
    w1 = rng.standard_normal((10, 30)).astype(np.float32)
    masked = prune(net_of(w0, w1), "weight", sparsity)
    keep = masked.masks.weight[0]
    assert (~keep).sum() == round(sparsity * w0.size)
    if sparsity > 0:
        assert np.abs(w0[~keep]).max() <= np.abs(w0[keep]).min()
    assert masked.masks.weight[1].all(), "the logits layer is not pruned by default"
    assert masked.achieved_sparsity() == pytest.approx(round(sparsity * w0.size) / w0.size)


def test_magnitude_zero_sparsity_keeps_everything(small_net):
    masked = prune(small_net, "weight", 0.0)
    assert all(k.all() for k in masked.masks.weight)
    assert all(b.all() for b in masked.masks.bias)
    assert masked.achieved_sparsity() == 0.0


def test_magnitude_ties_break_by_flat_index():
    w = np.ones((4, 5), dtype=np.float32)
    keep = prune(net_of(w, np.ones((2, 4), np.float32)), "weight", 0.5).masks.weight[0]
    assert (~keep).ravel()[:10].all() and keep.ravel()[10:].all()


def test_magnitude_keeps_one_weight_at_extreme_sparsity(rng):
    w = rng.standard_normal((3, 4)).astype(np.float32)
    masked = prune(net_of(w, np.ones((2, 3), np.float32)), "weight", 0.999)
    assert masked.masks.weight[0].sum() == 1
    assert masked.masks.weight[0].ravel()[np.argmax(np.abs(w))]


def test_magnitude_global_matches_naive_sort(rng):
    net = random_net(rng, (12, 9, 7, 4), scale=1.0)
    # different scales per layer so the global ranking really differs from per-layer
    net = net_of(net.layers[0].weight * 3, net.layers[1].weight, net.layers[2].weight)
    masked = prune(net, "weight", 0.6, scope="global")
    expected = naive.magnitude_keep([net.layers[0].weight, net.layers[1].weight], 0.6)
    for got, want in zip(masked.masks.weight[:2], expected):
        np.testing.assert_array_equal(got, want)
    per_layer = masked.layer_sparsity()
    assert per_layer[0] < 0.6 < per_layer[1], "the larger-scale layer should lose fewer weights"
    removed = sum((~k).sum() for k in masked.masks.weight[:2])
    assert removed == round(0.6 * (net.layers[0].weight.size + net.layers[1].weight.size))


def test_magnitude_prune_logits_option(rng):
    net = random_net(rng, (8, 6, 4))
    masked = prune(net, "weight", 0.5, prune_logits=True)
    assert (~masked.masks.weight[1]).sum() == 12
    assert masked.pruned_layers == (0, 1)
