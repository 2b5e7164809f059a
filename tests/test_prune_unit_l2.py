import numpy as np
import pytest

from sparsenet import Layer, MaskedNetwork, Masks, Network, convert, prune
from sparsenet.testing import assert_forward_close

import naive
from conftest import net_of, random_net


@pytest.mark.parametrize("sparsity", [0.0, 0.3, 0.8, 0.99])
def test_unit_removes_whole_rows_with_smallest_norm(rng, sparsity):
    net = random_net(rng, (16, 40, 20, 10), bias=True)
    masked = prune(net, "unit", sparsity)
    for i in (0, 1):
        keep, bkeep, w = masked.masks.weight[i], masked.masks.bias[i], net.layers[i].weight
        rows = keep.any(axis=1)
        assert (keep == rows[:, None]).all(), "a unit is removed whole or not at all"
        np.testing.assert_array_equal(bkeep, rows)
        assert (~rows).sum() == min(round(sparsity * w.shape[0]), w.shape[0] - 1)
        norms = np.linalg.norm(w, axis=1)
        if (~rows).any():
            assert norms[~rows].max() <= norms[rows].min()
    assert masked.masks.weight[2].all() and masked.masks.bias[2].all(), "logits untouched"


def test_unit_80_percent_gives_the_classic_shape(rng):
    net = random_net(rng, (784, 1000, 1000, 500, 200, 10))
    masked = prune(net, "unit", 0.8)
    assert [int(k.any(axis=1).sum()) for k in masked.masks.weight] == [200, 200, 100, 40, 10]
    assert masked.achieved_sparsity() == pytest.approx(0.8)


def test_unit_global_ranks_across_layers(rng):
    w0 = rng.standard_normal((10, 6)).astype(np.float32) * 5
    w1 = rng.standard_normal((10, 10)).astype(np.float32) * 0.1
    masked = prune(net_of(w0, w1, np.ones((3, 10), np.float32)), "unit", 0.5, scope="global")
    removed = [int((~k.any(axis=1)).sum()) for k in masked.masks.weight]
    # all 10 smallest units are in layer 1; it keeps its largest one rather than vanish
    assert removed[:2] == [0, 9]


def test_unit_refuses_logits_and_nonzero_activation(rng):
    net = random_net(rng, (8, 6, 4))
    with pytest.raises(ValueError, match="logits"):
        prune(net, "unit", 0.5, prune_logits=True)
    w = rng.standard_normal((6, 8)).astype(np.float32)
    with pytest.raises(ValueError, match="layer 0: softmax is only supported as the output layer's activation"):
        net_of(w, np.ones((4, 6), np.float32), activation="softmax")
    # No valid Network has a hidden softmax (Network refuses it); the pruner's own guard stays,
    # so edit a layer past the check.
    net = net_of(w, np.ones((4, 6), np.float32))
    object.__setattr__(net.layers[0], "activation", "softmax")
    with pytest.raises(ValueError, match="layer 0 uses 'softmax'"):
        prune(net, "unit", 0.5)


def _with_activation(net: Network, activation: str) -> Network:
    last = len(net.layers) - 1
    return Network(tuple(Layer(layer.weight, layer.bias, layer.activation if i == last else activation)
                         for i, layer in enumerate(net.layers)))


@pytest.mark.parametrize("activation", ["relu", "tanh", "sigmoid", "gelu"])
@pytest.mark.parametrize("bias", [False, True])
@pytest.mark.parametrize("scope", ["layer", "global"])
def test_shrunk_folds_dead_units_and_equals_masked(rng, activation, bias, scope):
    """Deleting a unit with act(0) != 0 (sigmoid) folds its constant output into the next layer's
    bias, creating one where the layer had none: shrunk still equals the masked network."""
    net = _with_activation(random_net(rng, (29, 40, 33, 18, 7), bias=bias, scale=2.0), activation)
    masked = prune(net, "unit", 0.6, scope)
    shrunk = convert(masked, "shrunk")
    assert shrunk.widths[1:-1] == tuple(int(k.any(axis=1).sum()) for k in masked.masks.weight[:-1])
    assert shrunk.widths[1:-1] < net.widths[1:-1]
    if activation == "sigmoid" and not bias:
        assert all(layer.bias is not None for layer in shrunk.layers[1:]), "the folded constants need a bias"
    for n_batch in (1, 7, 256):
        x = rng.standard_normal((n_batch, 29)).astype(np.float32)
        assert_forward_close(shrunk(x), naive.forward(masked, x))


@pytest.mark.parametrize("activation", ["relu", "sigmoid", "tanh"])
def test_shrunk_folds_a_kept_bias_of_a_dead_unit(rng, activation):
    """Masks by hand: rows whose weights are all pruned but whose bias survives emit act(b_i)."""
    net = _with_activation(random_net(rng, (12, 9, 6, 3), bias=True), activation)
    keep = [np.ones(layer.weight.shape, bool) for layer in net.layers]
    keep[0][[1, 4, 5], :] = False
    keep[1][:] = False  # every unit of layer 1 dead: it keeps one so that no layer has width 0
    bias = tuple(np.ones(layer.n_out, bool) for layer in net.layers)
    masked = MaskedNetwork(net, Masks(tuple(keep), bias), "unit", 0.5, "layer", (0, 1))
    shrunk = convert(masked, "shrunk")
    assert shrunk.widths == (12, 6, 1, 3)
    for n_batch in (1, 7):
        x = rng.standard_normal((n_batch, 12)).astype(np.float32)
        assert_forward_close(shrunk(x), naive.forward(masked, x))
