"""A whole convolutional network (MobileNetV2-like) in one compiled call: sparse 1x1 convolutions.

Layout. Inside the kernel a tensor of ``C`` channels over ``H x W`` positions of a group of ``g``
samples is channel-major, positions as the SIMD lane axis: channel ``c`` is one row of
``M = H * W * g`` values, position-major with the group's samples innermost (value
``(p * W + q) * g + n``), padded to ``Mp``, a multiple of 8 (one AVX2 register of float32; rows
of 1 KB and more one line longer where that makes their distance an odd number of lines,
_row_stride), at ``slot + c * Mp``. A 1x1 convolution is then a sparse (CSR, rows = output channels) times dense
``(C_in, Mp)`` product in which each kept weight broadcasts into an FMA over a tile of 32 (then
8) lanes held in registers, as in Elsen et al., "Fast Sparse ConvNets" (2019) and XNNPACK's
sparse path (both CHW). A dense layer is the same product with ``H = W = 1``, so after the
global pooling the lanes are the group's samples. With the samples innermost, a depthwise
convolution over a group of GROUP_LANES samples is one SIMD FMA per tap (the 8 samples'
inputs are contiguous) whatever the plane size, down to MobileNetV2's 1x1 planes; one sample
(batch 1) runs a plane up to LANES_MAX_W wide with 8 channels in the lanes (transposed in and
out, _depthwise_lanes), a wider one a row 8 outputs at a time (a strided row as its stride-1
sums, every ``s``-th kept); a partial group is scalar. A full convolution (MobileNetV2's stem) is an im2col
step, its windows as rows, then a pointwise step over them: at batch 1 the stem had run scalar
(stride 2) and took a quarter of the network's time. NHWC (channels contiguous per position) was measured against this
layout for the 1x1 layers and lost; figures in :mod:`sparsenet.formats.sparse_conv`.

Every array is C-contiguous; kernels allocate nothing; callers (the format) validate. Steps (a
layer, or the flatten a dense layer on a spatial input needs) are described by ``ConvPlan``,
one int64 entry per step::

    op       0 pointwise (1x1 stride 1 conv, dense layer, a full conv after its im2col: CSR),
             1 im2col (c_out = kh * kw * c_in rows), 2 depthwise (dense weights),
             3 global average pool, 4 flatten (to (H*W*C,) per sample)
    act      0 linear, 1 ReLU, 2 ReLU6 (after the bias, before the residual add)
    c_in, h_in, w_in, c_out, h_out, w_out, kh, kw, stride, pad_t, pad_l   geometry
    src, dst, res   scratch slots read, written, added after the activation (res -1: none)
    w_off    op 0: first CSR row (absolute into indptr); op 2: first weight in ``dense_w``
    b_off    first bias of the step in ``bias`` (c_out values; zeros where the layer has none)

    PointwiseCSR  indptr int64[rows + 1] (absolute), indices uint16|int32[nnz] (input channel), data float[nnz]
    dense_w   float[...]  op 2: (c, kh, kw) row-major
    x         float[n_batch, n_in]   NHWC flattened, as the format takes it
    scratch   float[n_threads, MARGIN + (n_slots + 1) * slot + MARGIN]   a worker's slot s starts
              at MARGIN + s * slot; slot >= the largest step output + MARGIN (see _rows_vec); the
              last slot is the kernels' temporary (a strided depthwise row's stride-1 sums)
    out       float[n_batch, n_out]  NHWC flattened

Threads: ``conv_forward`` splits the batch into groups of ``group`` samples and the groups into
one contiguous range per worker (``numba.prange``); a worker runs its groups through every layer
with no barrier, in its own scratch row. A batch of one group (batch 1) has nothing to split
that way: ``conv_forward_split`` runs its steps in order and shares each large one among the
threads by output channel (a parallel region per step; :func:`split_parts` says which).
Each step runs in a function compiled on its own (_pointwise_step, _depthwise, _im2col),
called from the group loop: inlined into one large
function, the same loops ran 2-3x slower (LLVM optimized them less; measured, see c925da1).
Checked with ``inspect_asm`` (float32, AVX2): _pointwise_step's inner loop is vfmadd231ps on ymm
registers with the input row as memory operand; _depthwise runs vfmadd ymm, with vblendvps for
the edge lanes of _row_chunk; ReLU6 is vmaxps/vminps in registers.
"""

from typing import NamedTuple

import numba
import numpy as np
from llvmlite import ir
from numba import types
from numba.extending import intrinsic

from .simd import Vec, at, vadd, vfma, vload, vrelu, vsplat, vstore, vzeros

__all__ = ["OP_CODES", "ConvPlan", "PointwiseCSR", "conv_forward", "conv_forward_serial", "conv_forward_split",
           "padded_positions", "row_stride", "split_parts"]

OP_CODES = {"pointwise": 0, "im2col": 1, "depthwise": 2, "pool": 3, "flatten": 4}
ACT_CODES = {"linear": 0, "softmax": 0, "relu": 1, "relu6": 2}
LANE_PAD = 8
SKEW_FROM = 256  # channel rows from this many values on are skewed by a line (see _row_stride)
MARGIN = 32  # values kept free before, between (after each slot) and after the slots; see _rows_vec
GROUP_LANES = 8  # a group this size runs the spatial layers as SIMD over its samples
GROUP_BLOCK = 32  # channels a block of _depthwise_group
GROUP_MAX_INPUT = 16  # a group's depthwise layers on input planes up to this many positions: _depthwise_group
EVEN_MIN_W = 8  # one sample's stride-2 depthwise rows from this width on: _rows_even
LANES_MAX_W = 8  # one sample's depthwise planes up to this width run with channels in the lanes
SPLIT_CHANNELS = 16  # a thread's share of a shared depthwise step starts at a multiple of this (_split)

# "contract" lets LLVM fuse multiply-add; nothing else (NaN and inf must propagate as in dense).
_FASTMATH = {"contract"}


class ConvPlan(NamedTuple):
    """One int64 array per field, one entry per step (see the module docstring)."""

    op: np.ndarray
    act: np.ndarray
    c_in: np.ndarray
    h_in: np.ndarray
    w_in: np.ndarray
    c_out: np.ndarray
    h_out: np.ndarray
    w_out: np.ndarray
    kh: np.ndarray
    kw: np.ndarray
    stride: np.ndarray
    pad_t: np.ndarray
    pad_l: np.ndarray
    src: np.ndarray
    dst: np.ndarray
    res: np.ndarray
    w_off: np.ndarray
    b_off: np.ndarray


class PointwiseCSR(NamedTuple):
    """Every pointwise step's kept weights, rows (output channels) back to back."""

    indptr: np.ndarray
    indices: np.ndarray
    data: np.ndarray


def padded_positions(m: int) -> int:
    """``m`` lanes rounded up to whole 8-lane registers."""
    return -(-m // LANE_PAD) * LANE_PAD


@numba.njit(inline="always")
def _padded(m):
    return -(-m // 8) * 8  # padded_positions, compiled (LANE_PAD)


@numba.njit(inline="always")
def _row_stride(m):
    """``Mp``, the values from one channel row to the next: ``m`` padded to whole registers and,
    for rows of 1 KB or more whose length is a multiple of 128 bytes, 16 values (one 64-byte
    line) more. Rows a power of two apart (MobileNetV2's 16x16 planes of 8 samples: 8 KB) all
    fall into the same few L1 sets, 8 ways each, and a product reading 16 or more of them misses
    on every load; an odd number of lines apart they spread over all 64 sets."""
    mp = -(-m // 8) * 8
    if mp >= SKEW_FROM and mp % 32 == 0:
        mp += 16
    return mp


def row_stride(m: int) -> int:
    """:func:`_row_stride`, from Python (the format's scratch sizes)."""
    return int(_row_stride(m))


@intrinsic
def _vmin6(typingctx, a):
    """Lanes above 6 set to 6; NaN stays NaN (as ``if v > 6: v = 6`` does). With simd.vrelu: ReLU6."""
    if not isinstance(a, Vec):
        return None

    def codegen(context, builder, sig, args):
        vty = context.get_value_type(a)
        six = ir.Constant(vty, [ir.Constant(vty.element, 6.0)] * vty.count)
        return builder.select(builder.fcmp_ordered(">", args[0], six), six, args[0])

    return a(a), codegen


@intrinsic
def _vkeep(typingctx, a, lo, hi):
    """Lanes l with lo <= l < hi of a, zeros elsewhere (a select: a NaN in a dropped lane does
    not leak, as it would through a multiply by a 0/1 mask)."""
    if not isinstance(a, Vec) or not isinstance(lo, types.Integer) or not isinstance(hi, types.Integer):
        return None

    def codegen(context, builder, sig, args):
        # 32-bit lane numbers (bounds clamped into int32 first): with 64-bit ones an 8-lane mask
        # took two vpcmpgtq per bound and a pack (inspect_asm, AVX2)
        vty = context.get_value_type(a)
        i32 = ir.IntType(32)
        ity = ir.VectorType(i32, vty.count)
        lanes = ir.Constant(ity, [ir.Constant(i32, k) for k in range(vty.count)])
        undef = ir.Constant(ity, ir.Undefined)
        zeros = ir.Constant(ity, [0] * vty.count)
        top, bottom = ir.Constant(ir.IntType(64), vty.count + 1), ir.Constant(ir.IntType(64), -1)

        def splat(v, t):  # clamped to [-1, count + 1], which compares with every lane as v does
            v = context.cast(builder, v, t, types.int64)
            v = builder.select(builder.icmp_signed(">", v, top), top, v)
            v = builder.select(builder.icmp_signed("<", v, bottom), bottom, v)
            v = builder.trunc(v, i32)
            return builder.shuffle_vector(builder.insert_element(undef, v, ir.Constant(i32, 0)), undef, zeros)

        keep = builder.and_(builder.icmp_signed(">=", lanes, splat(args[1], sig.args[1])),
                            builder.icmp_signed("<", lanes, splat(args[2], sig.args[2])))
        return builder.select(keep, args[0], ir.Constant(vty, None))

    return a(a, lo, hi), codegen


@intrinsic
def _vload_even(typingctx, arr, offset):
    """arr.flat[offset:offset + 16:2]: 16 values loaded, the 8 at even positions kept (a strided
    row's inputs for 8 consecutive outputs of a stride-2 window)."""
    if not isinstance(arr, types.Array) or not isinstance(arr.dtype, types.Float) or not isinstance(offset,
                                                                                                     types.Integer):
        return None
    vt = Vec(arr.dtype, 8)

    def codegen(context, builder, sig, args):
        elem = context.get_value_type(arr.dtype)
        wide = ir.VectorType(elem, 16)
        data = context.make_array(sig.args[0])(context, builder, args[0]).data
        ptr = builder.bitcast(builder.gep(data, [args[1]]), wide.as_pointer())
        v = builder.load(ptr, align=context.get_abi_alignment(elem))
        even = ir.Constant(ir.VectorType(ir.IntType(32), 8), [2 * k for k in range(8)])
        return builder.shuffle_vector(v, ir.Constant(wide, ir.Undefined), even)

    return vt(arr, offset), codegen


@numba.njit(inline="always")
def _act_vec(a, act):
    if act == 1:
        return vrelu(a)
    if act == 2:
        return _vmin6(vrelu(a))
    return a


@numba.njit(inline="always")
def _act(v, act):
    if act >= 1 and v < 0:
        return 0.0
    if act == 2 and v > 6:
        return 6.0
    return v


@numba.njit(inline="always")
def _finish_vec(a, buf, o0, act, ro, lanes):
    """Activation, then the residual add (ro >= 0), in registers; one store."""
    a = _act_vec(a, act)
    if ro >= 0:
        a = vadd(a, vload(buf, ro, lanes))
    vstore(buf, o0, a)


@numba.njit(inline="always")
def _zero_tail(buf, row, m, mp):
    """Zero the padding lanes m:mp of the channel row at ``row``: the next pointwise step reads
    them (into padding lanes only), and stale values there could be denormal or grow.

    One 8-lane store of zeros at ``row + m`` (there are fewer than 8 padding lanes): it also zeroes
    up to 7 values past the row, the start of the next channel's row, so callers zero a row's
    tail before the next row is written (or past the last row: the MARGIN after each slot). The
    scalar loop it replaced made up most of a depthwise step on small planes at batch 1 (960
    channels of a 1x1 plane: 7 scalar stores each, 8 of the 11 us one such step took on the EPYC)."""
    while m < mp:  # up to 8 + 16 lanes (_row_stride)
        vstore(buf, row + m, vzeros(buf[row], 8))
        m += 8


@numba.njit(inline="always")
def _pw_tile(csr, r0, n_out, bias, b0, buf, so, mp_in, do, mp_out, ro, m0, act, lanes):
    """Output rows r0:r0 + n_out, lanes m0:m0 + lanes: two accumulators per row in registers
    (even and odd kept weights), so that consecutive FMAs do not wait on each other; four when
    the tile is one 8-lane register (planes of 1x1 or 2x2 positions at batch 1), where two
    chains left the FMA units waiting on their latency."""
    indptr, indices, data = csr.indptr, csr.indices, csr.data
    for o in range(n_out):
        b = bias[b0 + o]
        a0 = vsplat(b, lanes)
        a1 = vzeros(b, lanes)
        p = indptr[r0 + o]
        end = indptr[r0 + o + 1]
        if lanes == 8:
            a2 = vzeros(b, lanes)
            a3 = vzeros(b, lanes)
            while p + 4 <= end:
                a0 = vfma(a0, at(data, p), vload(buf, so + at(indices, p) * mp_in + m0, lanes))
                a1 = vfma(a1, at(data, p + 1), vload(buf, so + at(indices, p + 1) * mp_in + m0, lanes))
                a2 = vfma(a2, at(data, p + 2), vload(buf, so + at(indices, p + 2) * mp_in + m0, lanes))
                a3 = vfma(a3, at(data, p + 3), vload(buf, so + at(indices, p + 3) * mp_in + m0, lanes))
                p += 4
            a0 = vadd(a0, a2)
            a1 = vadd(a1, a3)
        while p + 2 <= end:
            a0 = vfma(a0, at(data, p), vload(buf, so + at(indices, p) * mp_in + m0, lanes))
            a1 = vfma(a1, at(data, p + 1), vload(buf, so + at(indices, p + 1) * mp_in + m0, lanes))
            p += 2
        if p < end:
            a0 = vfma(a0, at(data, p), vload(buf, so + at(indices, p) * mp_in + m0, lanes))
        _finish_vec(vadd(a0, a1), buf, do + o * mp_out + m0, act, ro + o * mp_out + m0 if ro >= 0 else -1, lanes)


@numba.njit(inline="always")
def _pointwise(csr, bias, r0, b0, n_out, buf, so, mp_in, do, mp_out, ro, act):
    """A CSR step over every lane tile: 32 lanes (8 float32 registers of accumulators), then 8."""
    m0 = 0
    while m0 + 32 <= mp_out:
        _pw_tile(csr, r0, n_out, bias, b0, buf, so, mp_in, do, mp_out, ro, m0, act, 32)
        m0 += 32
    while m0 < mp_out:
        _pw_tile(csr, r0, n_out, bias, b0, buf, so, mp_in, do, mp_out, ro, m0, act, 8)
        m0 += 8


@numba.njit(inline="always")
def _tap_range(lead, size, k):
    """Taps t in [t0, t1) of a k-tap window starting at ``lead`` (may be negative) whose input
    ``lead + t`` lies in [0, size): computed, so that no tap is tested on its own."""
    return max(0, -lead), min(k, size - lead)


@numba.njit(inline="always")
def _window(p, q, s, pt, pl, h_in, w_in, kh, kw):
    """Output (p, q)'s window: its top-left input (top, left), possibly outside the input, and the
    tap rows i0:i1 and columns j0:j1 that fall inside it."""
    top, left = p * s - pt, q * s - pl
    i0, i1 = _tap_range(top, h_in, kh)
    j0, j1 = _tap_range(left, w_in, kw)
    return top, left, i0, i1, j0, j1


@numba.njit(inline="always")
def _taps(buf, w, wb, ib, h_in, w_in, p, q, kh, kw, s, pt, pl, g, gi, acc):
    """acc + the window sum of output (p, q) of sample gi of one channel (input at ib, weights
    w[wb + i * kw + j]) over the taps inside the input (the others read zeros). Scalar, taps in
    row-major order, one FMA chain: the vector paths sum in the same order, so that a sample's
    result does not depend on the path it took (consecutive channels' chains overlap)."""
    top, left, i0, i1, j0, j1 = _window(p, q, s, pt, pl, h_in, w_in, kh, kw)
    for i in range(i0, i1):
        for j in range(j0, j1):
            acc += at(w, wb + i * kw + j) * at(buf, ib + ((top + i) * w_in + left + j) * g + gi)
    return acc


@numba.njit(inline="always")
def _taps_vec(buf, w, wb, ib, h_in, w_in, p, q, kh, kw, s, pt, pl, acc, lanes):
    """_taps for all ``lanes`` samples of a group at once (they are contiguous): each tap inside the
    input is one FMA of a broadcast weight with a vector of samples."""
    top, left, i0, i1, j0, j1 = _window(p, q, s, pt, pl, h_in, w_in, kh, kw)
    if kh == 3 and kw == 3 and i1 - i0 == 3 and j1 - j0 == 3:  # inside the input: unrolled, no bounds
        for i in range(3):
            for j in range(3):
                acc = vfma(acc, at(w, wb + i * 3 + j), vload(buf, ib + ((top + i) * w_in + left + j) * lanes, lanes))
        return acc
    for i in range(i0, i1):
        for j in range(j0, j1):
            acc = vfma(acc, at(w, wb + i * kw + j), vload(buf, ib + ((top + i) * w_in + left + j) * lanes, lanes))
    return acc


@numba.njit(inline="always")
def _row_chunk(buf, w, wb, ib, h_in, w_in, kh, kw, pl, top, q, n, b):
    """One sample, one channel: bias + the stride-1 window sums of outputs q:q + n (n <= 8, in the
    first n of 8 lanes; the other lanes hold partial sums the callers never keep) of the row whose
    window starts at input row ``top``. Each tap is one FMA of the 8 shifted inputs, lanes whose
    input column lies outside the row zeroed (_vkeep) where the tap reaches past an edge; taps
    that reach no kept lane's input are never visited: on MobileNetV2's 1x1 and 2x2 planes at
    batch 1 most taps fall in the padding."""
    a = vsplat(b, 8)
    i0, i1 = _tap_range(top, h_in, kh)
    if kh == 3 and kw == 3 and i1 - i0 == 3 and pl <= q and q + 10 <= w_in + pl:
        for i in range(3):  # every tap's 8 inputs inside the row: unrolled, no lane kept out
            for j in range(3):
                a = vfma(a, at(w, wb + i * 3 + j), vload(buf, ib + (top + i) * w_in + q + j - pl, 8))
        return a
    j0, j1 = max(0, pl - q - n + 1), min(kw, w_in + pl - q)
    for i in range(i0, i1):
        for j in range(j0, j1):
            lo, hi = pl - j - q, w_in + pl - j - q  # lanes lo:hi read inside the row
            v = vload(buf, ib + (top + i) * w_in + q + j - pl, 8)
            if lo > 0 or hi < 8:
                v = _vkeep(v, lo, hi)
            a = vfma(a, at(w, wb + i * kw + j), v)
    return a


@numba.njit(inline="always")
def _rows_even(buf, w, wb, ib, h_in, w_in, h_out, w_out, kh, kw, pt, pl, b, ob, rb, act):
    """One sample's output plane of one channel of a stride-2 depthwise layer, 8 outputs of a row
    at a time: each tap loads the 16 inputs its 8 windows span and keeps the even ones
    (_vload_even), lanes whose input lies outside the row zeroed (_vkeep). Stores as _rows_vec's
    stride-1 rows do (up to 7 values past a row; callers zero the tail after)."""
    for p in range(h_out):
        top = 2 * p - pt
        i0, i1 = _tap_range(top, h_in, kh)
        q0 = 0
        while q0 < w_out:
            a = vsplat(b, 8)
            for i in range(i0, i1):
                for j in range(kw):
                    c0 = 2 * q0 + j - pl  # input column of lane 0; lane k reads c0 + 2k
                    lo = max(0, (1 - c0) // 2)  # first lane with c0 + 2k >= 0
                    hi = min(8, (w_in - c0 + 1) // 2)  # lanes with c0 + 2k < w_in
                    if hi <= lo:
                        continue
                    v = _vload_even(buf, ib + (top + i) * w_in + c0)
                    if lo > 0 or hi < 8:
                        v = _vkeep(v, lo, hi)
                    a = vfma(a, at(w, wb + i * kw + j), v)
            _finish_vec(a, buf, ob + p * w_out + q0, act, rb + p * w_out + q0 if rb >= 0 else -1, 8)
            q0 += 8


@numba.njit(inline="always")
def _rows_vec(buf, w, wb, ib, h_in, w_in, h_out, w_out, kh, kw, s, pt, pl, b, ob, rb, act, tmp):
    """One sample's output plane of one channel, 8 outputs of a row at a time (_row_chunk).

    Stride 1 stores each chunk (activation and residual fused) straight into the output row.
    A larger stride computes the row's stride-1 sums over the window span it needs,
    ``(w_out - 1) * s + 1`` of them (``s`` times the work, in SIMD instead of scalar), into
    ``tmp``, then keeps every ``s``-th.

    Loads reach up to ``pl`` values before a row and ``kw + 7`` after it, and a stride-1 row's
    last chunk stores up to 7 values past the row (into the next row or channel, written after
    it, or the padding lanes, zeroed after it): the format leaves MARGIN values around the slots."""
    for p in range(h_out):
        if s == 1:
            q = 0
            while q < w_out:
                a = _row_chunk(buf, w, wb, ib, h_in, w_in, kh, kw, pl, p - pt, q, min(8, w_out - q), b)
                _finish_vec(a, buf, ob + p * w_out + q, act, rb + p * w_out + q if rb >= 0 else -1, 8)
                q += 8
            continue
        span = (w_out - 1) * s + 1
        q = 0
        while q < span:
            vstore(buf, tmp + q, _row_chunk(buf, w, wb, ib, h_in, w_in, kh, kw, pl, p * s - pt, q,
                                             min(8, span - q), b))
            q += 8
        for q in range(w_out):
            v = _act(buf[tmp + q * s], act)
            if rb >= 0:
                v += buf[rb + p * w_out + q]
            buf[ob + p * w_out + q] = v


@numba.njit(inline="always")
def _depthwise_lanes(plan, l, dense_w, bias, buf, so, mp_in, do, mp_out, ro, tmp, c_lo, c_hi):
    """A depthwise convolution of one sample with 8 channels in the SIMD lanes: the input plane is
    transposed into ``tmp`` (position-major, ``cp = padded(c)`` channels a position, the padding
    channels zero), each output position then takes one vector FMA per tap inside the input for
    every 8 channels (weights (kh, kw, cp) after the layer's (c, kh, kw) ones, padded to 8), into
    ``tmp + m_in * cp``, and the result is transposed back into channel rows, the residual
    added there. Taps run in the same row-major order from the bias as in _taps, so the result is
    the same as the other paths'. The transposes cost two copies of each value; in exchange no
    lane is wasted on small planes (a 2x2 plane is half a register) and no tap range is computed
    per channel.

    Only channels c_lo:c_hi (c_lo a multiple of 8) are read and written, in ``tmp`` too (its
    padding channels by whoever has the last one), so that threads can share a layer (_split)."""
    c, h_in, w_in = plan.c_out[l], plan.h_in[l], plan.w_in[l]
    h_out, w_out = plan.h_out[l], plan.w_out[l]
    kh, kw, s, pt, pl = plan.kh[l], plan.kw[l], plan.stride[l], plan.pad_t[l], plan.pad_l[l]
    b0, act = plan.b_off[l], plan.act[l]
    wt = plan.w_off[l] + _padded(c * kh * kw)  # on a whole register, as the format lays them out
    cp = _padded(c)
    m_in, m_out = h_in * w_in, h_out * w_out
    tin, tout = tmp, tmp + m_in * cp
    v_hi = cp if c_hi == c else c_hi  # vector channels c_lo:v_hi, the padding ones with the last
    for k in range(m_in):  # channels innermost in every loop: a 1x1 plane has one position
        for ch in range(c_lo, c_hi):
            buf[tin + k * cp + ch] = buf[so + ch * mp_in + k]
        for ch in range(c_hi, v_hi):
            buf[tin + k * cp + ch] = 0
    for p in range(h_out):
        for q in range(w_out):
            top, left, i0, i1, j0, j1 = _window(p, q, s, pt, pl, h_in, w_in, kh, kw)
            ok = tout + (p * w_out + q) * cp
            for c0 in range(c_lo, v_hi, 8):
                vstore(buf, ok + c0, vload(bias, b0 + c0, 8))
            for i in range(i0, i1):
                for j in range(j0, j1):
                    wk = wt + (i * kw + j) * cp
                    xk = tin + ((top + i) * w_in + left + j) * cp
                    for c0 in range(c_lo, v_hi, 8):
                        vstore(buf, ok + c0, vfma(vload(buf, ok + c0, 8), vload(dense_w, wk + c0, 8),
                                                  vload(buf, xk + c0, 8)))
            if act:
                for c0 in range(c_lo, v_hi, 8):
                    vstore(buf, ok + c0, _act_vec(vload(buf, ok + c0, 8), act))
    for ch in range(c_lo, c_hi):  # first: each zeroing reaches into the next row (_zero_tail)
        _zero_tail(buf, do + ch * mp_out, m_out, mp_out)
    for k in range(m_out):
        for ch in range(c_lo, c_hi):
            v = buf[tout + k * cp + ch]
            if ro >= 0:
                v += buf[ro + ch * mp_out + k]
            buf[do + ch * mp_out + k] = v


@numba.njit(inline="always")
def _depthwise_group(plan, l, dense_w, bias, buf, so, mp_in, do, mp_out, ro, c_lo, c_hi):
    """A depthwise convolution of a group of GROUP_LANES samples (contiguous in each channel row):
    output position by output position, and for each of its taps inside the input one pass over
    all channels, each an FMA of the channel's broadcast weight with its 8 samples, added into the
    output in place (started at the bias, activation and residual in a last pass). The taps a
    position reaches are computed once for every channel, and the channel loop is long and
    branch-free; the sums run in the same order as in _taps."""
    h_in, w_in = plan.h_in[l], plan.w_in[l]
    h_out, w_out = plan.h_out[l], plan.w_out[l]
    kh, kw, s, pt, pl = plan.kh[l], plan.kw[l], plan.stride[l], plan.pad_t[l], plan.pad_l[l]
    w0, b0, act = plan.w_off[l], plan.b_off[l], plan.act[l]
    kk = kh * kw
    g = GROUP_LANES
    for o in range(c_lo, c_hi):  # none unless pads make the output plane larger than the input (_row_stride)
        _zero_tail(buf, do + o * mp_out, g * h_out * w_out, mp_out)
    for c0 in range(c_lo, c_hi, GROUP_BLOCK):  # a block's input and output rows stay in L1
        c1 = min(c_hi, c0 + GROUP_BLOCK)
        for p in range(h_out):
            for q in range(w_out):
                top, left, i0, i1, j0, j1 = _window(p, q, s, pt, pl, h_in, w_in, kh, kw)
                ok = do + (p * w_out + q) * g
                for o in range(c0, c1):
                    vstore(buf, ok + o * mp_out, vsplat(bias[b0 + o], g))
                for i in range(i0, i1):
                    for j in range(j0, j1):
                        xk = so + ((top + i) * w_in + left + j) * g
                        wk = w0 + i * kw + j
                        for o in range(c0, c1):
                            vstore(buf, ok + o * mp_out, vfma(vload(buf, ok + o * mp_out, g),
                                                              at(dense_w, wk + o * kk), vload(buf, xk + o * mp_in, g)))
                for o in range(c0, c1):
                    a = _act_vec(vload(buf, ok + o * mp_out, g), act)
                    if ro >= 0:
                        a = vadd(a, vload(buf, ro + o * mp_out + (p * w_out + q) * g, g))
                    vstore(buf, ok + o * mp_out, a)


@numba.njit(cache=True, nogil=True, fastmath=_FASTMATH)
def _depthwise(plan, l, dense_w, bias, buf, so, mp_in, do, mp_out, ro, g, tmp, c_lo, c_hi):
    """A depthwise convolution of one group, dense weights (c, kh, kw), with bias, activation and
    residual add fused into one pass over the outputs. A group of GROUP_LANES samples runs every
    tap as one SIMD FMA over the samples; one sample runs a plane up to LANES_MAX_W wide with
    channels in the lanes (_depthwise_lanes), a wider one 8 outputs of a row at a time
    (_rows_vec, any stride); a partial group is scalar. Compiled on its own: inside _group's one
    big function LLVM optimized these loops less well.

    Stride-2 rows of 8 outputs or more take _rows_even (MobileNetV2's 16x16 -> 8x8 layer of 96
    channels: 33 -> 21 us against the lanes path; on 8x8 and smaller planes the lanes path is
    faster, 12 against 20 us and less).

    LANES_MAX_W, measured step by step on MobileNetV2 width 1.0 at batch 1 (EPYC, one thread;
    us per step, row path / channels in lanes): 1x1 planes of 960 channels 16 / 3 (after the
    vector _zero_tail), 2x2 of 384 25 / 6, 4x4 of 192 26 / 12, 8x8 of 144 37 / 40, stride 2 from
    8x8 40 / 21 and from 16x16 80 / 65, 16x16 of 32 at stride 1 29 / 54: the row path wins only
    on rows wider than 8.

    Only output channels c_lo:c_hi are written (see _split for when threads may share a step)."""
    h_in, w_in = plan.h_in[l], plan.w_in[l]
    h_out, w_out = plan.h_out[l], plan.w_out[l]
    kh, kw, s, pt, pl = plan.kh[l], plan.kw[l], plan.stride[l], plan.pad_t[l], plan.pad_l[l]
    w0, b0, act = plan.w_off[l], plan.b_off[l], plan.act[l]
    if g == 1 and s == 2 and w_out >= EVEN_MIN_W:
        for o in range(c_lo, c_hi):
            _rows_even(buf, dense_w, w0 + o * kh * kw, so + o * mp_in, h_in, w_in, h_out, w_out, kh, kw, pt, pl,
                       bias[b0 + o], do + o * mp_out, ro + o * mp_out if ro >= 0 else -1, act)
            _zero_tail(buf, do + o * mp_out, h_out * w_out, mp_out)
        return
    if g == 1 and w_out <= LANES_MAX_W:
        _depthwise_lanes(plan, l, dense_w, bias, buf, so, mp_in, do, mp_out, ro, tmp, c_lo, c_hi)
        return
    if g == GROUP_LANES and h_in * w_in <= GROUP_MAX_INPUT:
        _depthwise_group(plan, l, dense_w, bias, buf, so, mp_in, do, mp_out, ro, c_lo, c_hi)
        return
    for o in range(c_lo, c_hi):
        wb = w0 + o * kh * kw
        b = bias[b0 + o]
        ib = so + o * mp_in
        if g == 1:
            _rows_vec(buf, dense_w, wb, ib, h_in, w_in, h_out, w_out, kh, kw, s, pt, pl, b,
                      do + o * mp_out, ro + o * mp_out if ro >= 0 else -1, act, tmp)
            _zero_tail(buf, do + o * mp_out, h_out * w_out, mp_out)
            continue
        for p in range(h_out):
            for q in range(w_out):
                ob = do + o * mp_out + (p * w_out + q) * g
                rb = ro + o * mp_out + (p * w_out + q) * g if ro >= 0 else -1
                if g == GROUP_LANES:
                    a = _taps_vec(buf, dense_w, wb, ib, h_in, w_in, p, q, kh, kw, s, pt, pl,
                                  vsplat(b, GROUP_LANES), GROUP_LANES)
                    _finish_vec(a, buf, ob, act, rb, GROUP_LANES)
                else:
                    for gi in range(g):
                        v = _act(_taps(buf, dense_w, wb, ib, h_in, w_in, p, q, kh, kw, s, pt, pl, g, gi, b), act)
                        if ro >= 0:
                            v += buf[rb + gi]
                        buf[ob + gi] = v
        _zero_tail(buf, do + o * mp_out, g * h_out * w_out, mp_out)


@numba.njit(cache=True, nogil=True, fastmath=_FASTMATH)
def _im2col(plan, l, buf, so, mp_in, do, mp_out, g):
    """A full convolution's input windows as rows, so that the convolution is a pointwise step
    (CSR rows (kh, kw, c_in)-major, as the reference's weights) over them: row
    ``(i * kw + j) * c_in + k`` holds, at lane ``(p * w_out + q) * g + n``, input channel ``k``
    at ``(p * s + i - pt, q * s + j - pl)`` of sample ``n``, zero outside the input. Copies
    only; the FMAs then run in the pointwise kernel's register tiles, and a pruned tap costs
    nothing (it is not in the CSR)."""
    c_in, h_in, w_in = plan.c_in[l], plan.h_in[l], plan.w_in[l]
    h_out, w_out = plan.h_out[l], plan.w_out[l]
    kh, kw, s, pt, pl = plan.kh[l], plan.kw[l], plan.stride[l], plan.pad_t[l], plan.pad_l[l]
    for i in range(kh):
        for j in range(kw):
            for k in range(c_in):
                r = do + ((i * kw + j) * c_in + k) * mp_out
                src = so + k * mp_in
                for p in range(h_out):
                    row = p * s + i - pt
                    for q in range(w_out):
                        col = q * s + j - pl
                        o = r + (p * w_out + q) * g
                        if row < 0 or row >= h_in or col < 0 or col >= w_in:
                            for gi in range(g):
                                buf[o + gi] = 0
                        else:
                            base = src + (row * w_in + col) * g
                            for gi in range(g):
                                buf[o + gi] = buf[base + gi]
                _zero_tail(buf, r, g * h_out * w_out, mp_out)


@numba.njit(cache=True, nogil=True, fastmath=_FASTMATH)
def _pointwise_step(csr, bias, r0, b0, n_out, buf, so, mp_in, do, mp_out, ro, act):
    """_pointwise compiled on its own (see _depthwise)."""
    _pointwise(csr, bias, r0, b0, n_out, buf, so, mp_in, do, mp_out, ro, act)


@numba.njit(inline="always")
def _pool(plan, l, buf, so, mp_in, do, mp_out, g):
    hw = plan.h_in[l] * plan.w_in[l]
    for c in range(plan.c_in[l]):
        for gi in range(g):
            total = 0.0  # float64, whatever the dtype: as exact as the reference's mean
            base = so + c * mp_in + gi
            for k in range(hw):
                total += buf[base + k * g]
            buf[do + c * mp_out + gi] = total / hw
        _zero_tail(buf, do + c * mp_out, g, mp_out)


@numba.njit(inline="always")
def _flatten(plan, l, buf, so, mp_in, do, mp_out, g):
    """(C, H * W * g) to (H * W * C, g): the NHWC order a dense layer's columns have."""
    c_in, hw = plan.c_in[l], plan.h_in[l] * plan.w_in[l]
    for r in range(c_in * hw):  # first: each zeroing reaches into the next row (_zero_tail)
        _zero_tail(buf, do + r * mp_out, g, mp_out)
    for c in range(c_in):
        for k in range(hw):
            for gi in range(g):
                buf[do + (k * c_in + c) * mp_out + gi] = buf[so + c * mp_in + k * g + gi]


@numba.njit(inline="always")
def _load_input(plan, x, n0, g, buf, slot):
    """Samples n0:n0 + g of x (NHWC rows) into the first step's input slot as channel rows,
    padding lanes zeroed."""
    c, hw = plan.c_in[0], plan.h_in[0] * plan.w_in[0]
    so, mp = MARGIN + plan.src[0] * slot, _row_stride(g * hw)
    for ch in range(c):
        for gi in range(g):
            for k in range(hw):
                buf[so + ch * mp + k * g + gi] = x[n0 + gi, k * c + ch]
        _zero_tail(buf, so + ch * mp, g * hw, mp)


@numba.njit(inline="always")
def _store_output(plan, buf, slot, n0, g, out):
    last = plan.op.shape[0] - 1
    c, hw = plan.c_out[last], plan.h_out[last] * plan.w_out[last]
    do, mp = MARGIN + plan.dst[last] * slot, _row_stride(g * hw)
    for gi in range(g):
        for k in range(hw):
            for ch in range(c):
                out[n0 + gi, k * c + ch] = buf[do + ch * mp + k * g + gi]


@numba.njit(inline="always")
def _step(plan, csr, dense_w, bias, buf, slot, g, l, lo, hi):
    """Step l of a group of g samples in ``buf``; a pointwise or depthwise step only for its output
    channels lo:hi (any other step whole)."""
    tmp = buf.shape[0] - MARGIN - slot  # the last slot: the kernels' temporary
    op = plan.op[l]
    mp_in = _row_stride(g * plan.h_in[l] * plan.w_in[l])
    mp_out = _row_stride(g * plan.h_out[l] * plan.w_out[l])
    so, do = MARGIN + plan.src[l] * slot, MARGIN + plan.dst[l] * slot
    ro = MARGIN + plan.res[l] * slot if plan.res[l] >= 0 else -1
    if op == 0:
        _pointwise_step(csr, bias, plan.w_off[l] + lo, plan.b_off[l] + lo, hi - lo, buf, so, mp_in,
                        do + lo * mp_out, mp_out, ro + lo * mp_out if ro >= 0 else -1, plan.act[l])
    elif op == 2:
        _depthwise(plan, l, dense_w, bias, buf, so, mp_in, do, mp_out, ro, g, tmp, lo, hi)
    elif op == 1:
        _im2col(plan, l, buf, so, mp_in, do, mp_out, g)
    elif op == 3:
        _pool(plan, l, buf, so, mp_in, do, mp_out, g)
    else:
        _flatten(plan, l, buf, so, mp_in, do, mp_out, g)


@numba.njit(cache=True, nogil=True, fastmath=_FASTMATH)
def _group(plan, csr, dense_w, bias, x, n0, g, buf, slot, out):
    """Samples n0:n0 + g through every step, in scratch ``buf``. Compiled on its own, not inlined
    into conv_forward's parallel loop, which calls it once per group."""
    _load_input(plan, x, n0, g, buf, slot)
    for l in range(plan.op.shape[0]):
        _step(plan, csr, dense_w, bias, buf, slot, g, l, 0, plan.c_out[l])
    _store_output(plan, buf, slot, n0, g, out)


@numba.njit(parallel=True, cache=True, nogil=True, fastmath=_FASTMATH)
def conv_forward(plan, csr, dense_w, bias, x, scratch, out, group, slot, n_threads):
    """out = network(x): groups of ``group`` samples, one contiguous range of groups per worker
    (at most ``n_threads``, numba's thread count passed in so that the on-disk cache holds),
    each in its own row of ``scratch`` whose slots are ``slot`` values apart (at least the
    largest step output, ``c * padded_positions(group * h * w)``); see the module docstring."""
    n_batch = x.shape[0]
    n_groups = -(-n_batch // group)
    n_workers = min(n_threads, n_groups, scratch.shape[0])
    for t in numba.prange(n_workers):  # worker t writes only scratch[t] and its own samples of out
        buf = scratch[t]
        for k in range(t * n_groups // n_workers, (t + 1) * n_groups // n_workers):
            n0 = k * group
            _group(plan, csr, dense_w, bias, x, n0, min(group, n_batch - n0), buf, slot, out)
    return out


@numba.njit(cache=True, nogil=True, fastmath=_FASTMATH)
def conv_forward_serial(plan, csr, dense_w, bias, x, scratch, out, group, slot):
    """conv_forward on the calling thread only, in ``scratch[0]``: for batches of one group,
    where a parallel region would only add its start-up (and, on a busy machine, the wait for
    every worker thread to be scheduled: measured 9-20 ms against 2.5 ms at batch 1)."""
    n_batch = x.shape[0]
    buf = scratch[0]
    for n0 in range(0, n_batch, group):
        _group(plan, csr, dense_w, bias, x, n0, min(group, n_batch - n0), buf, slot, out)
    return out


SPLIT_MIN_FMAS = 4096  # a step shared by threads at batch 1 from this many vector FMAs (split_parts)


def split_parts(plan: ConvPlan, csr: PointwiseCSR, n_threads: int, group: int = 1,
                min_fmas: int = SPLIT_MIN_FMAS) -> np.ndarray:
    """How many threads share each step of :func:`conv_forward_split` (int64, one per step; 1:
    the calling thread alone): ``n_threads`` for a step of at least ``min_fmas`` vector FMAs
    (kept weights times 8-lane tiles for a pointwise step, channels times taps times tiles for a
    depthwise one) that can be cut by output channel without two threads writing the same
    values (_splits_cleanly). The default threshold was the best of 2048-8192 on MobileNetV2
    width 1.0 at batch 1 (EPYC, 2 threads): below it a step's parallel region and the move of
    its rows to the other core's cache cost more than the half of the step it saves."""
    parts = np.ones(plan.op.shape[0], np.int64)
    if n_threads < 2:
        return parts
    for l, op in enumerate(plan.op):
        r0, n = int(plan.w_off[l]), int(plan.c_out[l])
        tiles = -(-row_stride(group * int(plan.h_out[l] * plan.w_out[l])) // LANE_PAD)
        if op == OP_CODES["pointwise"]:
            fmas = int(csr.indptr[r0 + n] - csr.indptr[r0]) * tiles
        elif op == OP_CODES["depthwise"] and n >= 2 * SPLIT_CHANNELS and _splits_cleanly(plan, l, group):
            fmas = n * int(plan.kh[l] * plan.kw[l]) * tiles
        else:
            continue
        if fmas >= min_fmas:
            parts[l] = n_threads
    return parts


def _splits_cleanly(plan: ConvPlan, l: int, group: int) -> bool:
    """Whether depthwise step l stores only inside each output channel's row for groups of
    ``group``. Its 8-lane stores and _zero_tail reach up to 7 values past a row, into the next
    channel's, unless the row (or, in _rows_vec and _rows_even, each image row) is a whole
    number of vectors; within one thread that is harmless (the next row is written after), across
    two it is a race. So, for the path _depthwise takes: channels in lanes (one sample, planes
    up to LANES_MAX_W wide) when the plane is a multiple of 8 positions (8x8, 4x4); image rows
    of 8 outputs (stride 1 wider than LANES_MAX_W, or stride 2 from EVEN_MIN_W) when the width
    is a multiple of 8; a full group always; a partial group when its row is."""
    h, w, s = int(plan.h_out[l]), int(plan.w_out[l]), int(plan.stride[l])
    if group == GROUP_LANES:
        return True
    if group > 1:
        return group * h * w % LANE_PAD == 0
    if s == 2 and w >= EVEN_MIN_W:
        return w % LANE_PAD == 0
    if w <= LANES_MAX_W:
        return h * w % LANE_PAD == 0
    return s == 1 and w % LANE_PAD == 0


@numba.njit(inline="always")
def _split(plan, l, t, parts):
    """Output channels lo:hi of part t of step l (see split_parts)."""
    n = plan.c_out[l]
    if plan.op[l] == 2:
        lo = (t * n // parts) // SPLIT_CHANNELS * SPLIT_CHANNELS
        hi = n if t == parts - 1 else ((t + 1) * n // parts) // SPLIT_CHANNELS * SPLIT_CHANNELS
        return lo, hi
    return t * n // parts, (t + 1) * n // parts


@numba.njit(parallel=True, cache=True, nogil=True, fastmath=_FASTMATH)
def conv_forward_split(plan, csr, dense_w, bias, x, scratch, out, slot, parts):
    """out = network(x) for one group (x.shape[0] samples, at most GROUP_LANES; batch 1 in
    practice) in ``scratch[0]``, the steps in order, step l shared by ``parts[l]`` threads
    (:func:`split_parts`), each writing its own output channels: a parallel region per shared
    step instead of one thread for the whole network. The same sums as conv_forward_serial,
    bit for bit."""
    g = x.shape[0]
    buf = scratch[0]
    _load_input(plan, x, 0, g, buf, slot)
    for l in range(plan.op.shape[0]):
        n = parts[l]
        if n > 1:
            for t in numba.prange(n):
                lo, hi = _split(plan, l, t, n)
                _step(plan, csr, dense_w, bias, buf, slot, g, l, lo, hi)
        else:
            _step(plan, csr, dense_w, bias, buf, slot, g, l, 0, plan.c_out[l])
    _store_output(plan, buf, slot, 0, g, out)
    return out
