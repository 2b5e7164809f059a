"""``shrunk`` for networks with spatial layers: pruned channels deleted, a smaller dense conv network.

:class:`sparsenet.formats.shrunk.ShrunkDenseForward` builds this for a network with any layer kind
besides ``dense``; it is the same format (name, kind, self-description). :func:`shrink` writes a
smaller :class:`sparsenet.Network` with the same layers (fewer channels, biases folded, exactly
the same outputs) and the ``dense`` format's conv path (:mod:`.dense_conv`) runs it.

Which channels are constant (:func:`channel_constants`, computed in float64):

- a ``conv2d`` output channel (or ``dense`` unit) whose masked weights are all zero outputs
  ``act(b)`` at every position (``b``: its masked bias, 0 without one), whatever the padding;
  unit pruning clears the bias too, so a pruned channel outputs ``act(0)``;
- a ``depthwise_conv2d`` channel outputs a constant when its own kernel is all zero (``act(b)``),
  or when its input channel is the constant ``k`` and either ``k == 0`` (padding adds zeros too:
  ``act(b)``) or the layer has no padding (``act(k * sum(w) + b)``). So a pruned expand channel
  (``relu6(0) = 0``) makes the depthwise channel after it the constant ``relu6(b_dw)``;
- ``global_avg_pool`` passes its input's constants on; a residual add sums the constants of its
  two addends (either unknown: unknown).

Which channels are deleted (:func:`kept_channels`): a channel is kept when a reader needs it.

- ``conv2d`` and ``dense`` readers need an input channel that some of their weights read, unless
  it is a constant they can fold into their bias: ``bias[o] += k * sum_{i,j} W[o, i, j, c]``
  (a dense layer after a spatial one sums over the positions). A ``conv2d`` with padding folds
  only ``k == 0`` (its border windows would see padding zeros instead of ``k``), so a non-zero
  constant channel read by a padded kxk conv is kept and computed.
- ``depthwise_conv2d`` and ``global_avg_pool`` are per channel: their input and output keep the
  same channels (a channel needed on either side is kept on both).
- Residual groups (a layer, its ``residual_from`` source, that source's source, ...) share one
  channel set, since their outputs are added: a channel leaves the group only when no reader of
  any member needs it (in MobileNetV2: pruned in every project layer of the stage). A group that
  adds the network's input (``residual_from=-1``) keeps every channel. This is the rule's main
  limit: a unit-pruned project layer whose block adds a residual still computes its pruned
  channels (as zeros plus the bias it folded), because the stream they are added to is not
  constant there.
- The logits and the network input are never shrunk; a layer keeps at least its first channel
  (so that no layer has width 0, e.g. hand-made masks that prune a whole layer: that layer
  becomes one channel computing its constant). A spatial layer right after a ``dense`` or
  pooling layer (flat activations) keeps its whole input.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import ClassVar

import numpy as np

from ..activations import activate
from ..layers import LAYER_KINDS, GlobalAvgPool, kind_of
from ..model import MaskedNetwork, Masks, Network
from .base import FormatDefaults
from .dense import DenseForward
from .dense_conv import DenseConvForward
from .shrunk import ShrunkDenseForward

_PER_CHANNEL = ("depthwise_conv2d", "global_avg_pool")  # channel c in <-> channel c out


def _channels(layer) -> int:
    """Channels of a layer's output: C of an (H, W, C) output, else its units."""
    shape = getattr(layer, "output_shape", (layer.n_out,))
    return int(shape[-1])


def _is_spatial(net: Network, t: int) -> bool:
    """Whether tensor ``t`` (a layer's output; -1 the network input) is (H, W, C)."""
    return t >= 0 and len(getattr(net.layers[t], "output_shape", ())) == 3


def _taps(weight: np.ndarray, n_ch: int) -> np.ndarray:
    """A conv2d/dense weight as ``(n_out, positions, n_ch)``: what each output reads of each input channel."""
    return weight.reshape(weight.shape[0], -1, n_ch)


def channel_constants(masked: MaskedNetwork) -> list[np.ndarray]:
    """Per layer, the float64 value every position of each output channel holds whatever the
    input (NaN where it is not constant), by the rules in the module docstring."""
    net = masked.net
    const: list[np.ndarray] = []
    for j, (layer, w, b) in enumerate(zip(net.layers, masked.masked_weights(), masked.masked_biases())):
        n = _channels(layer)
        c = np.full(n, np.nan)
        pre = np.zeros(n) if b is None else b.astype(np.float64)
        rows = kind_of(layer).unit_weights(w).astype(np.float64)
        if layer.kind in ("conv2d", "dense"):
            dead = ~rows.any(axis=1)
            c[dead] = activate(layer.activation, pre[dead])
        elif layer.kind == "depthwise_conv2d":
            k = const[j - 1] if _is_spatial(net, j - 1) else np.full(n, np.nan)
            dead = ~rows.any(axis=1)
            flows = np.isfinite(k) & ((k == 0) | (not any(layer.pads)))
            ok = dead | flows
            value = np.where(dead, pre, np.nan_to_num(k) * rows.sum(axis=1) + pre)
            c[ok] = activate(layer.activation, value[ok])
        elif _is_spatial(net, j - 1):  # global_avg_pool: the mean of a constant
            c = const[j - 1].copy()
        r = getattr(layer, "residual_from", None)
        if r is not None:
            c = c + (np.nan if r == -1 else const[r])
        const.append(c)
    return const


def kept_channels(masked: MaskedNetwork, const: list[np.ndarray] | None = None) -> list[np.ndarray]:
    """Per layer, a bool mask over its output channels: True where the shrunk network keeps it."""
    net = masked.net
    const = channel_constants(masked) if const is None else const
    weights = masked.masked_weights()
    last = len(net.layers) - 1
    keep = [np.zeros(_channels(layer), bool) for layer in net.layers]
    keep[last][:] = True
    links = []  # (a, b): keep[b] |= keep[a], until nothing changes
    for j, layer in enumerate(net.layers):
        t = j - 1
        spatial_in = _is_spatial(net, t)
        if layer.kind in ("conv2d", "dense") and t >= 0:
            if layer.kind == "conv2d" and not spatial_in:
                keep[t][:] = True
            else:
                taps = _taps(weights[j], keep[t].size)
                reads = taps.any(axis=(0, 1))
                absorbs = layer.kind == "dense" or not any(layer.pads)
                foldable = np.isfinite(const[t]) & ((const[t] == 0) | absorbs)
                keep[t] |= reads & ~foldable
        elif layer.kind in _PER_CHANNEL:
            if spatial_in:
                links += [(j, t), (t, j)]
            else:  # the network input or a flat tensor: its channels stay, so do ours
                keep[j][:] = True
                if t >= 0:
                    keep[t][:] = True
        r = getattr(layer, "residual_from", None)
        if r == -1:
            keep[j][:] = True
        elif r is not None:
            links += [(j, r), (r, j)]
    changed = True
    while changed:
        changed = False
        for a, b in links:
            grown = keep[b] | keep[a]
            if (grown != keep[b]).any():
                keep[b], changed = grown, True
        for k in keep:
            if not k.any():
                k[0], changed = True, True
    return keep


def shrink(masked: MaskedNetwork) -> MaskedNetwork:
    """The smaller network that computes what ``masked`` does: deleted channels gone from every
    layer that writes or reads them, their constants folded into the readers' biases (float64,
    then the network's dtype). Its masks are ``masked``'s, cut the same way (biases all kept)."""
    net = masked.net
    const = channel_constants(masked)
    keep = kept_channels(masked, const)
    layers, masks_w, masks_b = [], [], []
    for j, (layer, w, b, m) in enumerate(zip(net.layers, masked.masked_weights(), masked.masked_biases(),
                                             masked.masks.weight)):
        rows = np.flatnonzero(keep[j])
        if layer.kind == "global_avg_pool":
            layers.append(GlobalAvgPool((*layer.input_shape[:2], rows.size), dtype=layer.dtype))
            masks_w.append(np.ones((rows.size, 0), bool))
            masks_b.append(None)
            continue
        bias = None if b is None else b.astype(np.float64)
        if layer.kind == "depthwise_conv2d" or j == 0:  # per channel, or reading the network input
            small_w, small_m = w[rows], m[rows]
        else:
            dropped = ~keep[j - 1] & np.isfinite(const[j - 1]) & (const[j - 1] != 0)
            fold = _taps(w, keep[j - 1].size)[:, :, dropped].astype(np.float64).sum(axis=1) @ const[j - 1][dropped]
            if fold[rows].any():
                bias = fold if bias is None else bias + fold
            small_w, small_m = (_cut(a, rows, np.flatnonzero(keep[j - 1]), keep[j - 1].size) for a in (w, m))
        bias = None if bias is None else bias[rows].astype(w.dtype)
        layers.append(replace(layer, weight=small_w, bias=bias))
        masks_w.append(small_m)
        masks_b.append(None if bias is None else np.ones(rows.size, bool))
    return MaskedNetwork(Network(tuple(layers)), Masks(tuple(masks_w), tuple(masks_b)), masked.method,
                         masked.sparsity, masked.scope, masked.pruned_layers)


def _cut(a: np.ndarray, rows: np.ndarray, cols: np.ndarray, n_ch: int) -> np.ndarray:
    """Output units ``rows`` of a conv2d/dense weight (or mask) ``a``, reading input channels ``cols``
    only; same rank: ``(rows, kh, kw, cols)`` or ``(rows, positions * cols)``."""
    a = a[rows]
    return np.ascontiguousarray(_taps(a, n_ch)[:, :, cols].reshape(*a.shape[:-1], -1))


@dataclass(frozen=True)
class ShrunkConvForward(FormatDefaults):
    """Deleted channels gone, the smaller network run by the ``dense`` format's conv path (built by ``shrunk``)."""

    name: ClassVar[str] = "shrunk"
    kind: ClassVar[str] = "structured"
    pruning: ClassVar[str] = "structured"
    saved_as: ClassVar[str] = "shrunk"
    layer_kinds: ClassVar[frozenset[str]] = frozenset(LAYER_KINDS)
    operating_points: ClassVar[bool] = True
    summary: ClassVar[str] = ShrunkDenseForward.summary
    style: ClassVar[tuple[str, str]] = ShrunkDenseForward.style
    inner: DenseConvForward
    channels: tuple[int, ...]  # surviving channels (units) of every layer's output
    widths: tuple[int, ...]  # the smaller network's flat widths, input first

    @classmethod
    def build(cls, masked: MaskedNetwork) -> ShrunkConvForward:
        small = shrink(masked)
        return cls(DenseForward.build(small), tuple(_channels(layer) for layer in small.net.layers), small.net.widths)

    def __call__(self, x: np.ndarray) -> np.ndarray:
        return self.inner(x)

    @property
    def nnz(self) -> int:
        return self.inner.nnz
