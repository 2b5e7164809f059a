"""The ``dense`` baseline for networks with spatial layers: NumPy/BLAS on NHWC activations.

:class:`sparsenet.formats.dense.DenseForward` builds this for a network with any layer kind
besides ``dense``; it is the same format (name, kind, self-description), zeros kept. Per kind:

- ``conv2d`` 1x1 with stride 1: one GEMM over every position, ``(n * H * W, C_in) @ (C_in, C_out)``;
- ``conv2d`` otherwise: im2col, the ``kh * kw`` shifted (and strided) windows of the padded
  input copied side by side, ``(n * Ho * Wo, kh * kw * C_in)``, then one GEMM with the weight
  ``(C_out, kh, kw, C_in)`` reshaped to ``(kh * kw * C_in, C_out)`` (the column order matches);
- ``depthwise_conv2d``: an elementwise multiply-add per tap, ``out += window(i, j) * w[:, i, j]``,
  broadcast over channels (no GEMM: every channel has its own 9 weights);
- ``global_avg_pool``: a mean over the positions; ``dense``: one GEMM as in the MLP path.

Residual adds keep the outputs that a later ``residual_from`` reads, and nothing else.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from ..activations import ACTIVATIONS
from ..layers import LAYER_KINDS
from ..layers._spatial import padded, window
from ..model import MaskedNetwork
from ..validation import check_batch
from .base import FormatDefaults


@dataclass(frozen=True)
class ConvStep:
    """One layer ready to run; ``op`` picks the code path, ``weight`` is laid out for it."""

    op: str  # "gemm" (dense), "pointwise" (1x1 stride 1), "im2col", "depthwise", "pool"
    weight: np.ndarray  # gemm/pointwise/im2col: (fan_in, n_out) C-contiguous; depthwise: (kh, kw, C); pool: empty
    bias: np.ndarray | None
    activation: str
    input_shape: tuple[int, ...]  # (H, W, C) of a spatial layer, (n_in,) of a dense one
    output_shape: tuple[int, ...]
    kernel_hw: tuple[int, int] = (1, 1)
    stride: int = 1
    pads: tuple[int, int, int, int] = (0, 0, 0, 0)
    residual_from: int | None = None
    nnz: int = 0


def conv_step(layer, weight: np.ndarray, bias: np.ndarray | None, nnz: int) -> ConvStep:
    """The :class:`ConvStep` of ``layer`` with its masked ``weight``/``bias``."""
    if layer.kind == "dense":
        return ConvStep("gemm", np.ascontiguousarray(weight.T), bias, layer.activation, (layer.n_in,),
                        (layer.n_out,), nnz=nnz)
    if layer.kind == "global_avg_pool":
        return ConvStep("pool", np.zeros(0, weight.dtype), None, "linear", layer.input_shape, layer.output_shape)
    geometry = dict(kernel_hw=layer.kernel_hw, stride=layer.stride, pads=layer.pads, nnz=nnz)
    if layer.kind == "depthwise_conv2d":
        return ConvStep("depthwise", np.ascontiguousarray(weight.transpose(1, 2, 0)), bias, layer.activation,
                        layer.input_shape, layer.output_shape, **geometry)
    op = "pointwise" if layer.kernel_hw == (1, 1) and layer.stride == 1 and not any(layer.pads) else "im2col"
    return ConvStep(op, np.ascontiguousarray(weight.reshape(weight.shape[0], -1).T), bias, layer.activation,
                    layer.input_shape, layer.output_shape, residual_from=layer.residual_from, **geometry)


def run_step(step: ConvStep, h: np.ndarray) -> np.ndarray:
    """``step``'s output for ``h`` (n, *input_shape), before bias and activation; always a fresh array."""
    n = h.shape[0]
    if step.op == "gemm":
        return h.reshape(n, -1) @ step.weight
    if step.op == "pool":
        return h.mean(axis=(1, 2), dtype=h.dtype)
    ho, wo, c_out = step.output_shape
    if step.op == "pointwise":
        return (h.reshape(-1, h.shape[-1]) @ step.weight).reshape(n, ho, wo, c_out)
    xp = padded(h, step.pads)
    kh, kw = step.kernel_hw
    if step.op == "depthwise":
        out = np.multiply(window(xp, 0, 0, step.stride, (ho, wo)), step.weight[0, 0])
        tap = np.empty_like(out)
        for t in range(1, kh * kw):
            i, j = divmod(t, kw)
            np.multiply(window(xp, i, j, step.stride, (ho, wo)), step.weight[i, j], out=tap)
            out += tap
        return out
    c_in = h.shape[-1]
    cols = np.empty((n, ho, wo, kh, kw, c_in), h.dtype)
    for i in range(kh):
        for j in range(kw):
            cols[:, :, :, i, j, :] = window(xp, i, j, step.stride, (ho, wo))
    return (cols.reshape(n * ho * wo, kh * kw * c_in) @ step.weight).reshape(n, ho, wo, c_out)


def conv_forward(steps: tuple[ConvStep, ...], x: np.ndarray, keep: frozenset[int]) -> np.ndarray:
    """Run flat ``x`` (n_batch, n_in) through ``steps``; ``keep``: outputs a residual add reads (-1: the input)."""
    n = x.shape[0]
    h = x.reshape(n, *steps[0].input_shape)
    saved = {-1: h} if -1 in keep else {}
    for i, step in enumerate(steps):
        h = run_step(step, h)
        if step.bias is not None:
            h += step.bias
        h = ACTIVATIONS[step.activation](h)
        if step.residual_from is not None:
            h += saved[step.residual_from]
        if i in keep:
            saved[i] = h
    return h.reshape(n, -1)


@dataclass(frozen=True)
class DenseConvForward(FormatDefaults):
    """Pruned weights kept as zeros in dense kernels, for networks with spatial layers (built by ``dense``)."""

    name: ClassVar[str] = "dense"
    kind: ClassVar[str] = "baseline"
    saved_as: ClassVar[str] = "dense"
    summary: ClassVar[str] = "zeros kept, numpy/BLAS: the baseline every format is compared with"
    style: ClassVar[tuple[str, str]] = ("black", "")
    operating_points: ClassVar[bool] = True
    layer_kinds: ClassVar[frozenset[str]] = frozenset(LAYER_KINDS)
    steps: tuple[ConvStep, ...]
    keep: frozenset[int]

    @classmethod
    def build(cls, masked: MaskedNetwork) -> DenseConvForward:
        steps = tuple(conv_step(layer, w, b, int(k.sum()))
                      for layer, w, b, k in zip(masked.net.layers, masked.masked_weights(),
                                                masked.masked_biases(), masked.masks.weight))
        keep = frozenset(s.residual_from for s in steps if s.residual_from is not None)
        return cls(steps, keep)

    def __call__(self, x: np.ndarray) -> np.ndarray:
        first = self.steps[0]
        check_batch(x, n_in=int(np.prod(first.input_shape)), dtype=first.weight.dtype)
        return conv_forward(self.steps, x, self.keep)

    @property
    def nnz(self) -> int:
        return sum(step.nnz for step in self.steps)
