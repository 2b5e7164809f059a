"""Per-layer time of the conv networks: which layers dominate at each sparsity (issue 12).

A format runs MobileNetV2 in one call (``sparse_conv``: one compiled call for the whole network),
so its layers cannot be timed inside that call, and timing each layer alone charges every layer
the call's fixed cost (measured on the width-1.0 network at batch 1: ``sparse_conv``'s one-layer
calls summed to 3.5x its whole-network call). Layer ``i``'s time is therefore the difference
between the network cut after layer ``i`` and the network cut before it, each run as a whole in
the format, on the same test images: the fixed cost cancels, and the layers add up to about the
whole network. The first layer's time carries the call's fixed cost. The difference is taken
within each round, between the two cut networks' blocks timed one after the other, and the
layer's time is the median of those paired differences (:func:`paired_differences`): a slow
phase of the machine that lasts longer than two blocks (a busy second vCPU, another guest)
then cancels. Taken as the difference of the two networks' medians over all rounds, as first
built, it did not: the committed AVX2 conv run gave roles of -69% and +132% of the network at
batch 64 and negative depthwise times at batch 1. The smallest layers' times can still come out
slightly negative; the report sums them by role. Every cut network's output is checked against
``dense`` before it is timed.

Layers are grouped by role, read off the network's structure (:func:`layer_role`): the stem
convolution, 1x1 expand and project convolutions around each depthwise one, the depthwise
convolutions, any other 1x1 (MobileNetV2's last, 1280-channel one) or larger convolution, the
pooling and the classifier. Each round times one format's cut networks in a row, then the
other's (the formats and the walk through the cut networks alternate their order between
rounds): a BLAS call leaves OpenBLAS' threads spinning, which slows a numba kernel timed right
after it. Interleaving the formats call by call, as first built, made ``sparse_conv``'s whole
network 2.7x slower at batch 64 than in the benchmark suite (22.9 against 8.36 ms on the 2-core
Xeon, reports/2026-12-02T150554Z-conv-avx512).
"""

from __future__ import annotations

import statistics
import time

import numpy as np

from sparsenet.formats import convert
from sparsenet.model import MaskedNetwork, Masks, Network
from sparsenet.prune import prune
from sparsenet.testing import assert_forward_close

__all__ = ["ROLES", "cut", "layer_role", "layer_time_records", "paired_differences"]

ROLES = ("stem conv", "1x1 expand", "depthwise", "1x1 project", "1x1 other", "other conv", "pooling",
         "classifier")
BLOCK_S = 5e-3  # each timed block repeats a call for at least this long
ROUNDS = 7


def layer_role(net: Network, i: int) -> str:
    """The role of layer ``i`` (one of :data:`ROLES`)."""
    layer = net.layers[i]
    if layer.kind == "dense":
        return "classifier"
    if layer.kind == "global_avg_pool":
        return "pooling"
    if layer.kind == "depthwise_conv2d":
        return "depthwise"
    if layer.kernel_hw != (1, 1):
        return "stem conv" if i == 0 else "other conv"
    if i > 0 and net.layers[i - 1].kind == "depthwise_conv2d":
        return "1x1 project"
    if i + 1 < len(net.layers) and net.layers[i + 1].kind == "depthwise_conv2d":
        return "1x1 expand"
    return "1x1 other"


def cut(masked: MaskedNetwork, k: int) -> MaskedNetwork:
    """``masked``'s first ``k`` layers as a network of their own (output: layer ``k - 1``'s)."""
    masks = Masks(masked.masks.weight[:k], masked.masks.bias[:k])
    return MaskedNetwork(Network(masked.net.layers[:k]), masks, masked.method, masked.sparsity, masked.scope)


def paired_differences(times: list[list[float]]) -> list[float]:
    """Layer i's time from ``times[k][r]``, the time of the network cut after layer k in round r:
    the median over rounds of ``times[i][r] - times[i - 1][r]`` (``times[0][r]`` for the first)."""
    return [statistics.median(t - (times[i - 1][r] if i else 0.0) for r, t in enumerate(row))
            for i, row in enumerate(times)]


def _time_block(forward, x: np.ndarray, reps: int) -> float:
    # untimed: each cut network's first call after another's is slower (its scratch, the previous
    # network's threads); measured without it at batch 64, sparsity 0.9: the whole network still
    # matched the suite (4.82 ms) but the stem came out at 5.0 ms and the depthwise layers at -6.2
    forward(x)
    start = time.perf_counter()
    for _ in range(reps):
        forward(x)
    return (time.perf_counter() - start) / reps


def _reps(forward, x: np.ndarray) -> int:
    forward(x)
    start = time.perf_counter()
    forward(x)
    once = max(time.perf_counter() - start, 1e-7)
    return max(1, min(10_000, round(BLOCK_S / once)))


def layer_time_records(dataset: str, net: Network, x_test: np.ndarray, sparsities, batch_sizes,
                       formats=("dense", "sparse_conv"), rounds: int = ROUNDS, progress: bool = True) -> list[dict]:
    """One record per (sparsity, batch, format, layer) for ``net`` pruned by weight, per layer:
    the layer's time as the difference of two cut networks' median times (the module docstring),
    with ``whole_s``, the median time of the network cut after this layer."""
    records = []
    n_layers = len(net.layers)
    for sparsity in sparsities:
        masked = prune(net, "weight", sparsity, scope="layer")
        for batch in batch_sizes:
            x = np.ascontiguousarray(x_test[:batch], dtype=net.dtype)
            started = time.perf_counter()
            forwards = []
            for k in range(1, n_layers + 1):
                part = cut(masked, k)
                fws = {f: convert(part, f) for f in formats}
                expected = fws["dense"](x) if "dense" in fws else convert(part, "dense")(x)
                for f, fw in fws.items():
                    try:
                        assert_forward_close(fw(x), expected)
                    except AssertionError as e:
                        raise RuntimeError(f"{f} disagrees with dense on {dataset}'s network cut after layer "
                                           f"{k - 1} (sparsity {sparsity:g}, batch {batch}): a bug") from e
                forwards.append(fws)
            reps = [{f: _reps(fw, x) for f, fw in fws.items()} for fws in forwards]
            times = [{f: [] for f in formats} for _ in forwards]
            for r in range(rounds):  # one format's cut networks in a row: see the module docstring
                for f in (formats if r % 2 == 0 else formats[::-1]):
                    forwards[-1][f](x)  # untimed: the other format's threads may still be spinning
                    for k in (range(n_layers) if r % 2 == 0 else reversed(range(n_layers))):
                        times[k][f].append(_time_block(forwards[k][f], x, reps[k][f]))
            layer_s = {f: paired_differences([t[f] for t in times]) for f in formats}
            for i, layer in enumerate(masked.net.layers):
                for f in formats:
                    records.append({
                        "dataset": dataset, "method": "weight", "scope": "layer", "sparsity": float(sparsity),
                        "batch": int(batch), "format": f, "layer": i, "kind": layer.kind,
                        "role": layer_role(masked.net, i), "weights": int(layer.weight.size),
                        "kept": int(masked.masks.weight[i].sum()), "median_s": layer_s[f][i],
                        "whole_s": statistics.median(times[i][f]),
                        "rounds": rounds, "calls_per_round": reps[i][f]})
            if progress:
                print(f"      per-layer times {dataset} sparsity {sparsity:g} batch {batch}: "
                      f"{n_layers} cut networks x {len(formats)} formats in {time.perf_counter() - started:.0f} s",
                      flush=True)
    return records
