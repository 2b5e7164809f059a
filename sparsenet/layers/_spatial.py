"""Geometry shared by the spatial layer kinds: NHWC activations, padding, output sizes, checks.

Activations of a spatial layer are NHWC, ``(n_batch, height, width, channels)``; between layers
and at a format's boundary they travel flattened in C order, ``(n_batch, height * width *
channels)`` (what Keras' ``Flatten`` of a channels-last tensor gives), so a layer's ``n_in`` /
``n_out`` are those flat sizes and :class:`sparsenet.Network` chains them like dense widths.
Padding is explicit, ``pads = (top, bottom, left, right)`` zeros; :func:`same_pads` gives
Keras/TensorFlow ``padding="same"`` (the extra row/column of an odd total goes to the bottom/right),
and a ``ZeroPadding2D`` before a ``padding="valid"`` layer folds into the same tuple.
"""

from __future__ import annotations

import numpy as np


def same_pads(input_hw: tuple[int, int], kernel_hw: tuple[int, int], stride: int) -> tuple[int, int, int, int]:
    """``(top, bottom, left, right)`` of TensorFlow's ``padding="same"``: output ``ceil(size / stride)``.

    Examples
    --------
    >>> same_pads((32, 32), (3, 3), 2)
    (0, 1, 0, 1)
    >>> same_pads((7, 7), (3, 3), 1)
    (1, 1, 1, 1)
    """
    pads = []
    for size, k in zip(input_hw, kernel_hw):
        total = max((-(-size // stride) - 1) * stride + k - size, 0)
        pads += [total // 2, total - total // 2]
    return pads[0], pads[1], pads[2], pads[3]


def output_hw(input_hw: tuple[int, int], kernel_hw: tuple[int, int], stride: int,
              pads: tuple[int, int, int, int]) -> tuple[int, int]:
    """Spatial size after a ``kernel_hw`` window with ``stride`` over the padded input."""
    h = (input_hw[0] + pads[0] + pads[1] - kernel_hw[0]) // stride + 1
    w = (input_hw[1] + pads[2] + pads[3] - kernel_hw[1]) // stride + 1
    return h, w


def check_geometry(layer, kernel_hw: tuple[int, int]) -> None:
    """ValueError naming the first bad field of a windowed layer (input size, stride, pads)."""
    hw = layer.input_hw
    if len(hw) != 2 or min(hw) < 1:
        raise ValueError(f"input_hw must be (height, width) with positive sizes, found {hw}")
    if not isinstance(layer.stride, int | np.integer) or layer.stride < 1:
        raise ValueError(f"stride must be a positive integer, found {layer.stride!r}")
    if len(layer.pads) != 4 or min(layer.pads) < 0:
        raise ValueError(f"pads must be 4 non-negative ints (top, bottom, left, right), found {layer.pads}")
    if max(layer.pads[:2]) >= kernel_hw[0] or max(layer.pads[2:]) >= kernel_hw[1]:
        raise ValueError(f"pads {layer.pads} reach past the {kernel_hw} kernel: a window would see only zeros")
    h, w = output_hw(hw, kernel_hw, layer.stride, layer.pads)
    if h < 1 or w < 1:
        raise ValueError(f"a {kernel_hw} kernel with stride {layer.stride} and pads {layer.pads} does not fit "
                         f"the {hw} input")


def padded(x: np.ndarray, pads: tuple[int, int, int, int]) -> np.ndarray:
    """``x`` (n, H, W, C) with zero rows/columns around it (``x`` itself when there are none)."""
    top, bottom, left, right = pads
    if not any(pads):
        return x
    out = np.zeros((x.shape[0], x.shape[1] + top + bottom, x.shape[2] + left + right, x.shape[3]), x.dtype)
    out[:, top:top + x.shape[1], left:left + x.shape[2], :] = x
    return out


def window(xp: np.ndarray, i: int, j: int, stride: int, out_hw: tuple[int, int]) -> np.ndarray:
    """The view of padded ``xp`` that tap ``(i, j)`` of every output position reads: (n, Ho, Wo, C)."""
    return xp[:, i:i + stride * (out_hw[0] - 1) + 1:stride, j:j + stride * (out_hw[1] - 1) + 1:stride, :]
