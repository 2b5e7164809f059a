"""Per-layer time of the conv networks: which layers dominate at each sparsity (issue 12).

A format runs MobileNetV2 in one call (``sparse_conv``: one compiled call for the whole network),
so its layers cannot be timed inside that call. Each layer is timed instead as a one-layer
network of its own, in the same format, on the activations it sees in the real network (the
inputs of the first test images, captured with ``dense``); a residual add is left out of its
layer (an elementwise add, the same in every format). The sum of a format's layers is shown next
to its whole-network time from the benchmark suite: the difference is what fusing the network into
one call saves (or costs).

Layers are grouped by role, read off the network's structure (:func:`layer_role`): the stem
convolution, 1x1 expand and project convolutions around each depthwise one, the depthwise
convolutions, any other 1x1 (MobileNetV2's last, 1280-channel one) or larger convolution, the
pooling and the classifier. Formats are timed one after the other on each layer, in alternating order, several
rounds, medians: a BLAS call leaves OpenBLAS' threads spinning, which slows a numba kernel timed
right after it, so each timed block starts with an untimed call.
"""

from __future__ import annotations

import dataclasses
import statistics
import time

import numpy as np

from sparsenet.formats import convert
from sparsenet.model import MaskedNetwork, Masks, Network
from sparsenet.prune import prune

__all__ = ["ROLES", "layer_role", "layer_time_records"]

ROLES = ("stem conv", "1x1 expand", "depthwise", "1x1 project", "1x1 other", "other conv", "pooling",
         "classifier")
BLOCK_S = 2e-3  # each timed block repeats a call for at least this long
ROUNDS = 5


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


def _one_layer(masked: MaskedNetwork, i: int) -> MaskedNetwork:
    layer = masked.net.layers[i]
    if getattr(layer, "residual_from", None) is not None:
        layer = dataclasses.replace(layer, residual_from=None)
    masks = Masks((masked.masks.weight[i],), (masked.masks.bias[i],))
    return MaskedNetwork(Network((layer,)), masks, masked.method, masked.sparsity, masked.scope)


def layer_inputs(masked: MaskedNetwork, x: np.ndarray) -> list[np.ndarray]:
    """The input every layer of ``masked`` sees for the network input ``x`` (flattened), by ``dense``."""
    inputs, outputs = [], {-1: x}
    h = x
    for i, layer in enumerate(masked.net.layers):
        inputs.append(h)
        h = convert(_one_layer(masked, i), "dense")(h)
        if layer.activation == "softmax":  # formats return logits; the network's last layer only
            break
        if getattr(layer, "residual_from", None) is not None:
            h = h + outputs[layer.residual_from]
        outputs[i] = h
    return inputs


def _time_block(forward, x: np.ndarray, reps: int) -> float:
    forward(x)  # untimed: leaves the other format's spinning threads behind
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
    the layer's median time as a one-layer network in that format (see the module docstring)."""
    records = []
    for sparsity in sparsities:
        masked = prune(net, "weight", sparsity, scope="layer")
        for batch in batch_sizes:
            x = np.ascontiguousarray(x_test[:batch], dtype=net.dtype)
            inputs = layer_inputs(masked, x)
            started = time.perf_counter()
            for i, h in enumerate(inputs):
                single = _one_layer(masked, i)
                forwards = {f: convert(single, f) for f in formats}
                reps = {f: _reps(fw, h) for f, fw in forwards.items()}
                times = {f: [] for f in formats}
                for r in range(rounds):
                    for f in (formats if r % 2 == 0 else formats[::-1]):
                        times[f].append(_time_block(forwards[f], h, reps[f]))
                layer = masked.net.layers[i]
                for f in formats:
                    q1, _, q3 = statistics.quantiles(times[f], n=4) if rounds > 1 else (times[f][0],) * 3
                    records.append({
                        "dataset": dataset, "method": "weight", "scope": "layer", "sparsity": float(sparsity),
                        "batch": int(batch), "format": f, "layer": i, "kind": layer.kind,
                        "role": layer_role(masked.net, i), "weights": int(layer.weight.size),
                        "kept": int(masked.masks.weight[i].sum()), "median_s": statistics.median(times[f]),
                        "iqr_s": q3 - q1, "rounds": rounds, "calls_per_round": reps[f]})
            if progress:
                print(f"      per-layer times {dataset} sparsity {sparsity:g} batch {batch}: "
                      f"{len(inputs)} layers x {len(formats)} formats in {time.perf_counter() - started:.0f} s",
                      flush=True)
    return records
