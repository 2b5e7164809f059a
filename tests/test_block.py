"""Block pruning (sparsenet.prune.block) and the sparse_block format against the float64 reference."""

import dataclasses

import numpy as np
import pytest

from sparsenet import Layer, MaskedNetwork, Masks, Network, convert, prune
from sparsenet.formats import FORMATS, auto, formats_for
from sparsenet.formats.sparse_block import SparseBlockForward, block_fill, tile_lanes
from sparsenet.kernels import block as kb
from sparsenet.prune import PRUNERS
from sparsenet.prune.block import BLOCK, block_scores
from sparsenet.testing import assert_forward_close

import naive
from conftest import random_net


def whole_blocks(keep: np.ndarray) -> bool:
    """Every group of BLOCK consecutive rows (the last one shorter) is all kept or all removed per column."""
    n = keep.shape[0]
    return all((keep[g:g + BLOCK].all(axis=0) | ~keep[g:g + BLOCK].any(axis=0)).all() for g in range(0, n, BLOCK))


@pytest.mark.parametrize("scope", ["layer", "global"])
@pytest.mark.parametrize("sparsity", [0.0, 0.3, 0.9, 0.99])
def test_block_pruning_removes_whole_blocks_at_the_asked_sparsity(rng, scope, sparsity):
    net = random_net(rng, (37, 50, 23, 10), bias=True)  # 50 and 23 rows: a short last block row
    masked = prune(net, "block", sparsity, scope)
    pruned = masked.pruned_layers
    for i in pruned:
        assert whole_blocks(masked.masks.weight[i]), i
        assert masked.masks.weight[i].any(), "every layer keeps a block"
    size = sum(net.layers[i].weight.size for i in pruned)
    removed = sum(int((~masked.masks.weight[i]).sum()) for i in pruned)
    per_layer_slack = BLOCK * (len(pruned) if scope == "layer" else 1)
    assert abs(removed - sparsity * size) <= per_layer_slack or sparsity == 0.99
    assert all(m is None or m.all() for m in masked.masks.bias), "biases are kept"
    assert masked.masks.weight[-1].all(), "the logits layer is not pruned by default"


def test_block_pruning_keeps_the_blocks_of_largest_mean_magnitude(rng):
    w = rng.standard_normal((9, 6)).astype(np.float32)  # 3 block rows, the last one of 1 row
    net = Network((Layer(w, None, "relu"), Layer(rng.standard_normal((4, 9)).astype(np.float32), None, "softmax")))
    masked = prune(net, "block", 0.5, "layer")
    scores, sizes = block_scores(w)
    keep = masked.masks.weight[0]
    kept_blocks = np.array([keep[(b // 6) * BLOCK, b % 6] for b in range(scores.size)])
    assert scores[kept_blocks].min() >= scores[~kept_blocks].max()
    assert sizes.tolist() == [4] * 6 + [4] * 6 + [1] * 6
    assert abs(int((~keep).sum()) - 27) <= BLOCK


def test_block_pruning_global_ranks_across_layers(rng):
    big = random_net(rng, (20, 16, 10), scale=5.0).layers[0]
    small = random_net(rng, (16, 16, 10), scale=0.1).layers[0]
    net = Network((big, small, Layer(rng.standard_normal((10, 16)).astype(np.float32), None, "softmax")))
    masked = prune(net, "block", 0.5, "global")
    s = masked.layer_sparsity()
    assert s[1] > 0.9 and s[0] < 0.3, s  # the small-magnitude layer goes first
    assert masked.masks.weight[1].any()


def test_block_method_is_registered_and_offers_its_format():
    assert PRUNERS["block"].block_rows == BLOCK and not PRUNERS["block"].structured
    assert "sparse_block" in formats_for(False, method_blocks=True)
    assert "sparse_block" not in formats_for(False) and "sparse_block" not in formats_for(True)
    assert FORMATS["sparse_block"].pruning == "block"


def hand_masked(rng, widths, densities, bias=True, dtype=np.float32) -> MaskedNetwork:
    """Random unstructured masks (not blocks: the format must be right on any mask), with an
    empty row and an empty column in every layer of at least two rows."""
    net = random_net(rng, widths, bias=bias, dtype=dtype)
    keep = []
    for layer, d in zip(net.layers, densities):
        k = rng.random(layer.weight.shape) < d
        if k.shape[0] > 1:
            k[0, :], k[:, -1] = False, False
        keep.append(k)
    bias_keep = tuple(None if layer.bias is None else np.ones(layer.n_out, bool) for layer in net.layers)
    return MaskedNetwork(net, Masks(tuple(keep), bias_keep), "weight", 0.5, "layer", tuple(range(len(widths) - 1)))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("vector_bits", [128, 256, 512])
def test_sparse_block_matches_reference_on_any_mask(rng, dtype, vector_bits):
    """Every tile width the host could pick (vector_bits forces another instruction set's
    tiles), odd widths (short last block rows), empty rows and columns, a layer with nothing
    kept, batch 1, odd batches and batches of several tiles, and zero inputs."""
    for widths, densities in [((37, 50, 23, 10), (0.3, 0.9, 1.0)), ((5, 3, 1), (1.0, 0.0)),
                              ((70, 65, 33, 9, 10), (0.05, 0.5, 0.0, 0.7))]:
        masked = hand_masked(rng, widths, densities, dtype=dtype)
        forward = SparseBlockForward.build(masked, vector_bits=vector_bits)
        for n in (1, 2, 7, 16, 33, 70):
            x = rng.random((n, widths[0])).astype(dtype)
            x[:, ::3] = 0
            assert_forward_close(forward(x), naive.forward(masked, x))
        assert_forward_close(forward(np.zeros((1, widths[0]), dtype)), naive.forward(masked, np.zeros((1, widths[0]))
                                                                                      .astype(dtype)))
        assert forward.nnz == sum(int(k.sum()) for k in masked.masks.weight)


@pytest.mark.parametrize("scope", ["layer", "global"])
@pytest.mark.parametrize("sparsity", [0.0, 0.5, 0.9, 0.99])
def test_sparse_block_on_block_pruned_networks(rng, scope, sparsity):
    net = random_net(rng, (61, 48, 30, 10), bias=True)
    masked = prune(net, "block", sparsity, scope)
    forward = convert(masked, "sparse_block")
    for n in (1, 5, 64):
        x = rng.random((n, 61)).astype(np.float32)
        assert_forward_close(forward(x), naive.forward(masked, x))
    assert block_fill(masked) >= auto.BLOCK_FILL  # short last block rows (30 and 10 units) are padded
    # stored: whole blocks, the kept weights plus the padding of short last block rows (30 and 10 units)
    assert forward.csr.vals.size == round(forward.nnz / block_fill(masked))


def test_batch_1_and_batched_agree(rng):
    """Both sum every row in input order from its bias, so they agree to FMA rounding."""
    masked = prune(random_net(rng, (40, 36, 20, 10), bias=True), "block", 0.7)
    forward = convert(masked, "sparse_block")
    x = rng.random((9, 40)).astype(np.float32)
    batched = forward(x)
    single = np.concatenate([forward(x[i:i + 1]) for i in range(9)])
    np.testing.assert_allclose(single, batched, rtol=1e-6, atol=1e-6)


def test_unstructured_masks_fill_blocks_poorly(rng):
    net = random_net(rng, (100, 80, 10))
    assert block_fill(prune(net, "weight", 0.9)) < 0.5
    assert block_fill(prune(net, "block", 0.9)) > 0.9


def test_auto_considers_sparse_block_for_block_pruned_networks_only(rng):
    net = random_net(rng, (30, 24, 10))
    assert "sparse_block" in auto.AutoForward.build(prune(net, "block", 0.9)).candidates
    assert "sparse_block" not in auto.AutoForward.build(prune(net, "weight", 0.9)).candidates


def test_tile_widths_fit_the_registers():
    assert kb.block_lanes(np.float32, 256) == (8, 16)
    assert kb.block_lanes(np.float32, 512) == (8, 16, 32)
    assert kb.block_lanes(np.float64, 256) == (8,)
    assert kb.block_lanes(np.float32, 128) == (8,)
    assert tile_lanes(64, np.float32, 256) == 16 and tile_lanes(5, np.float32, 256) == 8
    # a whole tile per thread first: two threads at batch 32 get two 16-lane tiles, not one of 32
    assert tile_lanes(32, np.float32, 512, n_threads=2) == 16 and tile_lanes(32, np.float32, 512) == 32
    assert tile_lanes(5, np.float32, 512, n_threads=2) == 8


def test_sparse_block_refuses_bad_input(rng):
    forward = convert(prune(random_net(rng, (12, 8, 10)), "block", 0.5), "sparse_block")
    with pytest.raises(ValueError, match="12"):
        forward(np.zeros((2, 11), np.float32))
    with pytest.raises(TypeError, match="float32"):
        forward(np.zeros((1, 12), np.float64))


def test_the_benchmark_grid_times_sparse_block_on_block_pruned_networks_only():
    from bench.grid import GRIDS, cases

    grid = dataclasses.replace(GRIDS["quick"], datasets=("mnist",), methods=("block", "weight"))
    by_method = {m: {c.format for c in cases(grid) if c.method == m} for m in ("block", "weight")}
    assert "sparse_block" in by_method["block"] and "sparse_block" not in by_method["weight"]
    assert by_method["weight"] <= by_method["block"], "every other format runs on block-pruned networks too"
    assert {c.stage for c in cases(grid) if c.format == "sparse_block"} == set(grid.stages)
