"""``sparse_conv``: convolutional networks (MobileNetV2) in one compiled call, 1x1 convolutions sparse.

:func:`sparsenet.kernels.conv.conv_forward` runs every layer of a batch without returning to
Python: the 1x1 convolutions (and dense layers) as CSR by output channel (kept weights only,
16-bit indices) times the activations with the spatial positions as SIMD lanes; any other
conv2d (the 3x3 stride-2 stem) as its input windows' rows (im2col) times its kept weights, the
same CSR product; the depthwise layers dense; bias, activation (ReLU6, ReLU, linear) and
residual add fused into each layer's output pass. Threads
take whole groups of GROUP samples (no barrier between layers); a batch of one group runs on
the calling thread (``conv_forward_serial``), except batch 1 with more than one thread: its
large steps are shared by output channel (``conv_forward_split``). Scratch is per thread,
reused across calls.

Measured on the 2-core AVX2 AMD EPYC, shared with three other agents (load average 4-8 on 2
cores, so every figure is slower than on a quiet machine and noisy; ratios are from one process,
interleaved rounds, medians of 5). MobileNetV2 for 32x32x1 inputs, Keras random init with batch
norm folded, weight magnitude pruning per layer of the 1x1 and dense layers (depthwise excluded).

Layout, the 1x1 layers alone (all 34 of alpha 1.0 at their real sizes, one thread, the kept
weights' CSR in each variant): positions as lanes (channel rows, this module) against NHWC per
position, either CSR rows (a scalar dot per output) or CSC columns (each non-zero input
scattering its kept weights, zero inputs skipped)::

    sparsity batch   channel rows   NHWC CSR   NHWC CSC   rows faster by
    0.5      1         1.56 ms       4.20 ms    3.96 ms    2.5x
    0.5      64       51.9  ms     412   ms   356   ms     6.9x
    0.9      1         0.83 ms       1.38 ms    1.59 ms    1.7x
    0.9      64       20.5  ms      72.8 ms    98.5 ms     3.6x

Whole network against ``dense`` (numpy/BLAS), 2 numba threads. OpenBLAS at 2 threads collapsed
on the busy machine (alpha 1.0, batch 64: the 1x1 GEMMs took 670 ms against 38 ms at 1 thread,
dense 1.0-1.1 s per batch), so dense has its faster setting here, 1 BLAS thread; the other
engines are the report's. Median ms per batch, dense / sparse_conv = ratio::

    alpha sparsity  batch 1                  batch 64
    1.0   0.0       5.26 / 5.11  = 1.03x     131 / 79.3 = 1.65x
    1.0   0.5       6.51 / 4.55  = 1.43x     133 / 64.4 = 2.07x
    1.0   0.7       7.18 / 3.62  = 1.98x     116 / 52.3 = 2.22x
    1.0   0.9       8.47 / 2.98  = 2.84x     135 / 44.2 = 3.07x
    1.0   0.95      7.39 / 2.86  = 2.58x     130 / 40.8 = 3.19x
    0.35  0.0       4.20 / 1.87  = 2.24x     47.7 / 28.2 = 1.69x
    0.35  0.5       5.16 / 2.18  = 2.37x     68.8 / 25.5 = 2.70x
    0.35  0.7       4.35 / 1.41  = 3.09x     53.5 / 24.6 = 2.17x
    0.35  0.9       4.92 / 1.69  = 2.91x     84.2 / 27.3 = 3.08x
    0.35  0.95      5.06 / 1.56  = 3.24x     82.1 / 29.1 = 2.82x

What is left at high sparsity is the dense part: removing the depthwise taps from the kernel
(alpha 1.0, sparsity 0.9, one group) saved about half of its time, removing every kept 1x1
weight much less (noisy: those ablations moved by 30% between runs); at 0.5 the 1x1 layers
still took about half. Dense's own time at batch 64 was mostly its depthwise layers (135 of
175 ms with 1 BLAS thread). Cold compile: about 25 s per dtype on an idle core, minutes here.

The stem as im2col + CSR and the batch-1 strided depthwise rows in SIMD (were scalar), with the
taps each window reaches computed rather than tested one by one: on the 2-core AVX-512 Xeon
(a noisy VM: TFLite itself ran 1.5-2x slower than in reports/2026-12-02T150554Z-conv-avx512),
Keras-initialized MobileNetV2 width 1.0 pruned per layer, one process, this build against the
previous one interleaved, medians of 9 (``/tmp``-only A/B script; figures in the commit): batch
1 1.6-1.9x faster at sparsity 0.7-0.95, batch 64 1.2-1.4x. One-layer networks at batch 1: the
stem 803 -> 23 us, a 16x16 stride-2 depthwise of 96 channels 911 -> 115-136 us.

Batch 1, the depthwise layers (a per-step cycle-counter profile of the whole network, MobileNetV2
width 1.0 pruned to 0.9 and rescaled to unit activations, one thread, AVX2 EPYC): they took 750
of 1190 us, 20-40 ns a channel on the 1x1 and 2x2 planes where a channel is one to sixteen
FMAs. The padding lanes of a channel row are now zeroed by one vector store instead of up to 7
scalar ones, planes up to 8 wide run 8 channels in the lanes (weights also kept (kh, kw, c));
depthwise then took 260 us. Groups (batch > 1): input planes of at most 16 positions run one
pass per tap over blocks of 32 channels (per step, against the per-channel loop: 1x1 planes
4.5x, 2x2 1.7-2.1x, 4x4 1.1-1.5x faster; on 8x8 it lost 2x, set conflicts of rows 2 KB apart),
and a 3x3 window inside the input is unrolled (16x16 and 8x8 planes 1.2-1.4x). Scratch and
weights start on 64-byte lines. Whole network, each build in its own process, alternating, the
best of 30 blocks of 10 ms per process (two copies of the package in one process gave one of
them a steady 2x handicap at batch 1 even with identical code, so that is not used): batch 1
1218 -> 974 us at sparsity 0.5 (1.25x) and 872 -> 448 us at 0.9 (1.95x) with the first two
changes; batch 64 4.4-4.9 -> 3.4-4.2 ms at 0.9 and 8.1-10.2 -> 7.5 ms at 0.5 with the rest.

Batch 1 on two threads (conv_forward_split against conv_forward_serial, same network rescaled
after pruning, EPYC, one process, 10-ms blocks interleaved, medians): 850 -> 596 us at sparsity
0.5 (1.43x), 413 -> 317 us at 0.9 (1.30x), the results bit for bit the same; 18 of 52 steps
shared at 0.9 (threshold 4096 vector FMAs; 2048 shared 29 and lost 1.15x, 8192 shared 2 and
gained less). On this shared VM the gain is not steady: in 3 of 5 processes the shared runs
had phases at 470-540 us (the serial ones stayed at 400-405), with no CPU steal shown and
whether or not the threads were pinned to their own CPUs; the second vCPU was, we assume, busy
for another guest. ``numba.set_num_threads(1)`` (the report's ``--threads 1``) keeps batch 1 on
one thread.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import ClassVar

import numba
import numpy as np

from ..kernels.conv import (
    ACT_CODES,
    LANE_PAD,
    MARGIN,
    OP_CODES,
    ConvPlan,
    PointwiseCSR,
    conv_forward,
    conv_forward_serial,
    conv_forward_split,
    padded_positions,
    row_stride,
    split_parts,
)
from ..layers import LAYER_KINDS
from ..model import MaskedNetwork
from ..validation import check_batch
from .base import FormatDefaults
from .fused import aligned_empty

# Samples per group (one worker runs a group through every layer). Late MobileNetV2 layers are
# 1x1 or 2x2, where the group is the lanes, so a group wants >= 8 samples; early ones hold
# 16x16 positions per sample, so a large group's activations leave L2.
GROUP = 8
_SCRATCH_SHAPES = 3


def _allocate(reads: list[tuple[int, ...]]) -> tuple[list[int], int, int]:
    """Scratch slots for step outputs: ``reads[s]`` are the tensors step ``s`` reads (-1: the
    input, else a step's output); a step never writes a slot holding a tensor read at or after
    it. Returns (slot of each step's output, slot of the input, number of slots)."""
    last_use = {-1: 0}
    for s, used in enumerate(reads):
        for t in used:
            last_use[t] = s
    slot_of = {-1: 0}
    out = []
    for s in range(len(reads)):
        busy = {slot_of[t] for t in slot_of if last_use.get(t, -1) >= s}
        slot = min(set(range(len(busy) + 1)) - busy)
        slot_of[s] = slot
        out.append(slot)
    return out, 0, max(out + [0]) + 1


def _steps(masked: MaskedNetwork):
    """The kernel's steps: one dict of plan fields per step, its reads, and its weights."""
    net = masked.net
    steps, reads, rows, dense, biases = [], [], [], [], []
    tensor_of_layer = {-1: -1}
    n_rows = n_dense = n_bias = 0
    for i, (layer, w, b, keep) in enumerate(zip(net.layers, masked.masked_weights(), masked.masked_biases(),
                                                masked.masks.weight)):
        src = tensor_of_layer[i - 1]
        in_shape = tuple(getattr(layer, "input_shape", (layer.n_in,)))
        if layer.kind == "dense" and len(in_shape) == 1:
            prev = tuple(getattr(net.layers[i - 1], "output_shape", in_shape)) if i > 0 else in_shape
            if len(prev) == 3 and prev[0] * prev[1] > 1:  # flattened NHWC: channels-major rows first
                steps.append(dict(op=OP_CODES["flatten"], act=0, c_in=prev[2], h_in=prev[0], w_in=prev[1],
                                  c_out=layer.n_in, h_out=1, w_out=1, kh=1, kw=1, stride=1, pad_t=0, pad_l=0,
                                  b_off=0, w_off=0, res_tensor=-2))
                reads.append((src,))
                src = len(steps) - 1
        res = getattr(layer, "residual_from", None)
        geo = dict(act=ACT_CODES[layer.activation], kh=1, kw=1, stride=1, pad_t=0, pad_l=0, b_off=n_bias)
        if layer.kind == "global_avg_pool":
            h, wd, c = layer.input_shape
            geo.update(op=OP_CODES["pool"], c_in=c, h_in=h, w_in=wd, c_out=c, h_out=1, w_out=1, w_off=0)
        elif layer.kind in ("dense", "conv2d"):
            h, wd = (1, 1) if layer.kind == "dense" else layer.output_shape[:2]
            if layer.kind == "conv2d" and (layer.kernel_hw != (1, 1) or layer.stride != 1 or any(layer.pads)):
                (hi, wi, c), (kh, kw) = layer.input_shape, layer.kernel_hw  # windows as rows, then pointwise
                steps.append(dict(op=OP_CODES["im2col"], act=0, c_in=c, h_in=hi, w_in=wi, c_out=kh * kw * c,
                                  h_out=h, w_out=wd, kh=kh, kw=kw, stride=layer.stride, pad_t=layer.pads[0],
                                  pad_l=layer.pads[2], b_off=0, w_off=0, res_tensor=-2))
                reads.append((src,))
                src = len(steps) - 1
            w2, k2 = w.reshape(w.shape[0], -1), keep.reshape(keep.shape[0], -1)
            geo.update(op=OP_CODES["pointwise"], c_in=w2.shape[1], h_in=h, w_in=wd, c_out=w2.shape[0], h_out=h,
                       w_out=wd, w_off=n_rows)
            rows.append((w2, k2))
            n_rows += w2.shape[0]
        else:
            (h, wd, c), (ho, wo, co) = layer.input_shape, layer.output_shape
            geo.update(op=OP_CODES["depthwise"], c_in=c, h_in=h,
                       w_in=wd, c_out=co, h_out=ho, w_out=wo, kh=layer.kernel_hw[0], kw=layer.kernel_hw[1],
                       stride=layer.stride, pad_t=layer.pads[0], pad_l=layer.pads[2], w_off=n_dense)
            # then (kh, kw, c) with c padded to whole registers (one sample's channels-in-lanes path),
            # starting on a whole register too, as does the next layer's
            cp = padded_positions(co)
            wt = np.zeros((w[0].size, cp), w.dtype)
            wt[:, :co] = w.reshape(co, -1).T
            gap = np.zeros(padded_positions(w.size) - w.size, w.dtype)
            dense += [w.ravel(), gap, wt.ravel()]
            n_dense += w.size + gap.size + wt.size
        n_bias += geo["c_out"]
        biases.append(np.zeros(geo["c_out"], net.dtype) if b is None else b)
        steps.append(geo)
        reads.append((src,) if res is None else (src, tensor_of_layer[res]))
        geo["res_tensor"] = -2 if res is None else tensor_of_layer[res]
        tensor_of_layer[i] = len(steps) - 1
    return steps, reads, rows, dense, biases


@dataclass(frozen=True)
class SparseConvForward(FormatDefaults):
    name: ClassVar[str] = "sparse_conv"
    kind: ClassVar[str] = "sparse"
    summary: ClassVar[str] = ("conv networks in one compiled call: 1x1 convolutions as CSR (16-bit indices) over "
                              "positions in SIMD lanes, other convs via im2col, depthwise dense, activations fused")
    style: ClassVar[tuple[str, str]] = ("darkgreen", "p")
    operating_points: ClassVar[bool] = True
    layer_kinds: ClassVar[frozenset[str]] = frozenset(LAYER_KINDS)
    needs_kinds: ClassVar[frozenset[str]] = frozenset({"conv2d", "depthwise_conv2d"})  # MLPs: `sparse`
    # float32 only: conv networks come from Keras in float32, and each dtype is ~90 s of cold numba
    # compile (the whole test suite has a 10-minute budget on 2 cores)
    dtypes: ClassVar[frozenset[np.dtype]] = frozenset({np.dtype(np.float32)})
    # fused into each layer's output pass; the output layer's softmax is linear, as in every format
    activations: ClassVar[frozenset[str]] = frozenset(ACT_CODES)
    plan: ConvPlan
    csr: PointwiseCSR
    dense_w: np.ndarray
    bias: np.ndarray
    n_slots: int
    kept: int
    _scratch: threading.local = field(default_factory=threading.local, repr=False, compare=False)

    @classmethod
    def build(cls, masked: MaskedNetwork) -> SparseConvForward:
        net = masked.net
        if np.dtype(net.dtype) not in cls.dtypes:
            raise NotImplementedError(f"format {cls.name!r} runs {sorted(d.name for d in cls.dtypes)} networks; this "
                                      f"one is {np.dtype(net.dtype).name}: cast its weights and biases to float32 "
                                      "before pruning (or use 'dense')")
        for i, layer in enumerate(net.layers):
            if layer.activation not in cls.activations:
                raise NotImplementedError(f"the sparse_conv format fuses {sorted(cls.activations)} only; layer {i} "
                                          f"is {layer.activation!r}")
        steps, reads, rows, dense, biases = _steps(masked)
        slots, input_slot, n_slots = _allocate(reads)
        src = [input_slot if r[0] == -1 else slots[r[0]] for r in reads]
        res = [-1 if s["res_tensor"] == -2 else (input_slot if s["res_tensor"] == -1 else slots[s["res_tensor"]])
               for s in steps]
        fields = {name: np.array([s[name] for s in steps], np.int64) for name in ConvPlan._fields
                  if name not in ("src", "dst", "res")}
        plan = ConvPlan(**fields, src=np.array(src, np.int64), dst=np.array(slots, np.int64),
                                res=np.array(res, np.int64))
        widest = max([w.shape[1] for w, _ in rows], default=1)
        index_dtype = np.uint16 if widest <= np.iinfo(np.uint16).max + 1 else np.int32
        indptr, indices, data = [np.zeros(1, np.int64)], [np.zeros(0, index_dtype)], [np.zeros(0, net.dtype)]
        nnz = 0
        for w, keep in rows:
            r, c = np.nonzero(keep)
            indptr.append(nnz + np.cumsum(np.bincount(r, minlength=keep.shape[0])))
            indices.append(c.astype(index_dtype))
            data.append(w[r, c])
            nnz += r.size
        csr = PointwiseCSR(np.concatenate(indptr).astype(np.int64), np.concatenate(indices),
                                   np.concatenate(data).astype(net.dtype))
        dense_w = aligned_empty(sum(d.size for d in dense), net.dtype)  # the lanes path's loads on lines
        dense_w[:] = np.concatenate([np.zeros(0, net.dtype), *dense])
        # LANE_PAD zeros after the last bias: the depthwise kernel loads a layer's biases 8 at a time
        bias = np.concatenate(biases + [np.zeros(LANE_PAD, net.dtype)]).astype(net.dtype)
        return cls(plan, csr, dense_w, bias, n_slots,
                   sum(int(k.sum()) for k in masked.masks.weight))

    def slot_size(self, group: int) -> int:
        """Values one scratch slot holds for groups of ``group`` samples: the largest step output
        (or the input), channel rows padded to whole registers."""
        p = self.plan
        outs = p.c_out * np.array([row_stride(group * h * w) for h, w in zip(p.h_out, p.w_out)])
        first = int(p.c_in[0]) * row_stride(group * int(p.h_in[0] * p.w_in[0]))
        dw = p.op == OP_CODES["depthwise"]
        strided = p.w_in[dw & (p.stride > 1)]  # a row of _rows_vec's stride-1 sums
        # one sample: a depthwise step's input and output, channels in lanes (_depthwise_lanes)
        lanes = ((p.h_in * p.w_in + p.h_out * p.w_out) * np.array([padded_positions(c) for c in p.c_out]))[dw]
        return int(max(outs.max(), first, strided.max(initial=0) + 2 * LANE_PAD,
                       lanes.max(initial=0) if group == 1 else 0))

    def _buffers(self, group: int, n_threads: int, dtype) -> tuple[np.ndarray, int]:
        """Per-thread scratch reused across calls (zeroed once, see kernels.conv._zero_tail); the
        last _SCRATCH_SHAPES shapes are kept."""
        key = (group, n_threads, np.dtype(dtype))
        kept = self._scratch.__dict__.setdefault("buffers", {})
        if key not in kept:
            if len(kept) >= _SCRATCH_SHAPES:
                del kept[next(iter(kept))]
            # slots MARGIN values apart, MARGIN around all, each on a 64-byte line (the vectors of a
            # channel row never straddle two: with NumPy's 16-byte alignment a whole network ran
            # 1.7-2.2x slower at batch 1 on one allocation than on another)
            line = 64 // np.dtype(dtype).itemsize
            slot = -(-(self.slot_size(group) + MARGIN) // line) * line
            # one slot more than the tensors need: the kernels' temporary (kernels.conv._group)
            row = -(-(MARGIN + (self.n_slots + 1) * slot + MARGIN) // line) * line
            scratch = aligned_empty((n_threads, row), dtype)
            scratch[:] = 0
            kept[key] = (scratch, slot)
        return kept[key]

    def _parts(self, n_threads: int) -> np.ndarray:
        kept = self._scratch.__dict__.setdefault("parts", {})
        if n_threads not in kept:
            kept[n_threads] = split_parts(self.plan, self.csr, n_threads)
        return kept[n_threads]

    @property
    def n_in(self) -> int:
        p = self.plan
        return int(p.c_in[0] * p.h_in[0] * p.w_in[0])

    @property
    def n_out(self) -> int:
        p = self.plan
        return int(p.c_out[-1] * p.h_out[-1] * p.w_out[-1])

    def __call__(self, x: np.ndarray) -> np.ndarray:
        x = check_batch(x, n_in=self.n_in, dtype=self.bias.dtype)
        x = np.ascontiguousarray(x)
        n_threads = numba.get_num_threads()
        group = 1 if x.shape[0] == 1 else min(GROUP, -(-x.shape[0] // n_threads))
        scratch, slot = self._buffers(group, n_threads, x.dtype)
        out = np.empty((x.shape[0], self.n_out), x.dtype)
        if n_threads > 1 and x.shape[0] == 1:  # the large steps shared by the threads
            conv_forward_split(self.plan, self.csr, self.dense_w, self.bias, x, scratch, out, slot,
                               self._parts(n_threads))
        elif n_threads == 1 or x.shape[0] <= group:  # one worker: no parallel region to start
            conv_forward_serial(self.plan, self.csr, self.dense_w, self.bias, x, scratch, out, group, slot)
        else:
            conv_forward(self.plan, self.csr, self.dense_w, self.bias, x, scratch, out, group, slot, n_threads)
        return out

    @property
    def nnz(self) -> int:
        return self.kept
