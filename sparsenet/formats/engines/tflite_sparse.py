"""``tflite_sparse``: TensorFlow Lite's own sparse path, the float32 conv network converted with
``optimizations=[tf.lite.Optimize.EXPERIMENTAL_SPARSITY]`` and run by the LiteRT interpreter
with its default XNNPACK delegate.

What runs, checked on this installation (TensorFlow 2.21, ai-edge-litert 2.3.0, x86-64 with
AVX2/AVX-512): **XNNPACK's dense kernels, not its sparse ones.** The format stays because it is
what a TFLite user would try, and the report should show that it does not pay here.

- The converter does store sparse tensors: at 90% weight pruning every pruned CONV_2D (and
  FULLY_CONNECTED) weight is stored sparse behind a DENSIFY op (Keras MobileNetV2 alpha 1.0,
  32x32x1: 35 DENSIFY, flatbuffer 8.85 MB -> 1.58 MB). Depthwise and logits layers are not pruned
  by default, so they stay dense.
- The XNNPACK delegate densifies each DENSIFY'd weight once when the interpreter is built and, if
  it found any, asks XNNPACK for sparse inference (``XNN_FLAG_HINT_SPARSE_INFERENCE``;
  ``tensorflow/lite/delegates/xnnpack/xnnpack_delegate.cc``). No Python option is involved:
  the LiteRT interpreter applies that delegate by default, and nothing else selects the path.
- XNNPACK then rewrites NCHW-compatible clusters for its sparse 1x1 kernels only when
  ``xnn_is_chw_compatible_config`` holds, which on x86 is false for any CPU with AVX ("sparse
  microkernels on x86 currently target only SSE, and on processors with AVX ISA dense inference
  is expected to be faster than sparse", ``google/XNNPACK src/xnnpack/hardware-config.h``). So on
  an AVX machine the densified weights run in the same NHWC GEMM kernels as ``tflite``.
- Even on ARM the report's networks would not qualify: XNNPACK's sparse subgraph must start with
  a 3x3 stride-2 convolution with 3 input channels and padding 1 on every side, and take strided
  depthwise layers with explicit padding 1 (Fashion-MNIST's MobileNetV2 has 1 channel; at 32x32
  every stride-2 layer pads (0, 1), which the converter turns into SAME padding, and XNNPACK
  refuses SAME on strided layers); the 1x1 convolutions must be at least 2/3 zeros.

Measured (one process, 1 thread, batch 1, 400-600 calls of each format interleaved call by
call, on 2 cores busy with a training run; ratios of the minimum and 10th-percentile times, two
runs where two values are given), tflite / tflite_sparse at 90% weight pruning per layer, and
whether their outputs are bit-identical:

    network                                             min        p10        outputs
    Keras MobileNetV2 alpha 1.0, 32x32x1 (the report)   1.02-1.06  1.02-1.07  identical
    the same for 32x32x3 (CIFAR-10's)                   1.03       1.05       identical
    a net meeting XNNPACK's rules (64x64x3, 3x3 s2 pad 1
      first, stride-2 depthwise pad 1, 1x1 convs, MEAN)  0.97-0.98  0.97-0.99  identical
    MLP 784-1000-1000-500-200-10 (FULLY_CONNECTED)       1.02       1.01       identical

No difference beyond noise and the same bits: the sparse path did not run, not even where the
graph meets XNNPACK's rules. For MLPs XNNPACK has no sparse FULLY_CONNECTED kernel (it densifies;
TFLite's builtin FULLY_CONNECTED has a sparse variant, but the default delegate takes the op), so
the format is offered for conv networks only (``needs_kinds``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from .tflite import TFLiteForward

__all__ = ["TFLiteSparseForward", "op_names"]


def op_names(model: bytes) -> list[str]:
    """The flatbuffer's ops in execution order, read through the builtin-kernel interpreter (no
    delegate, so DENSIFY and PAD are listed as converted, not as XNNPACK runs them)."""
    from ai_edge_litert.interpreter import Interpreter, OpResolverType

    it = Interpreter(model_content=model, experimental_op_resolver_type=OpResolverType.BUILTIN_REF)
    it.allocate_tensors()
    return [op["op_name"] for op in it._get_ops_details()]  # private, but LiteRT's only graph reader


@dataclass(eq=False)
class TFLiteSparseForward(TFLiteForward):
    """:class:`~sparsenet.formats.engines.tflite.TFLiteForward` on the EXPERIMENTAL_SPARSITY
    flatbuffer: weight tensors the converter finds sparse enough are stored sparse behind DENSIFY
    ops. ``in_memory_bytes`` is that (smaller) flatbuffer; the densified copy the delegate makes
    at build and XNNPACK's packed weights are not visible and not counted (as for ``tflite``)."""

    name: ClassVar[str] = "tflite_sparse"
    summary: ClassVar[str] = ("TensorFlow Lite float32, EXPERIMENTAL_SPARSITY (sparse tensors, DENSIFY ops): "
                              "XNNPACK densifies them at load and runs its dense kernels (its sparse path is "
                              "off on AVX CPUs)")
    style: ClassVar[tuple[str, str]] = ("darkorchid", "H")
    sparse_tensors: ClassVar[bool] = True
    # conv networks only: XNNPACK's sparse kernels are 1x1 convolutions in NCHW subgraphs; for an
    # MLP its FULLY_CONNECTED densifies the weights at load, the same run as `tflite`
    needs_kinds: ClassVar[frozenset[str]] = frozenset({"conv2d", "depthwise_conv2d"})
