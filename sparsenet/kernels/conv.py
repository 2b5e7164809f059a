"""A whole convolutional network (MobileNetV2-like) in one compiled call: sparse 1x1 convolutions.

Layout. Inside the kernel a tensor of ``C`` channels over ``H x W`` positions of a group of ``g``
samples is channel-major, positions as the SIMD lane axis: channel ``c`` is one row of
``M = H * W * g`` values, position-major with the group's samples innermost (value
``(p * W + q) * g + n``), padded to ``Mp``, a multiple of 8 (one AVX2 register of float32), at
``slot + c * Mp``. A 1x1 convolution is then a sparse (CSR, rows = output channels) times dense
``(C_in, Mp)`` product in which each kept weight broadcasts into an FMA over a tile of 32 (then
8) lanes held in registers, as in Elsen et al., "Fast Sparse ConvNets" (2019) and XNNPACK's
sparse path (both CHW). A dense layer is the same product with ``H = W = 1``, so after the
global pooling the lanes are the group's samples. With the samples innermost, a depthwise or
full convolution over a group of GROUP_LANES samples is one SIMD FMA per tap (the 8 samples'
inputs are contiguous) whatever the plane size, down to MobileNetV2's 1x1 planes; one sample
(batch 1) runs stride-1 windows 8 outputs of a row at a time; the rest (stride 2 at batch 1,
partial groups) is scalar. NHWC (channels contiguous per position) was measured against this
layout for the 1x1 layers and lost; figures in :mod:`sparsenet.formats.sparse_conv`.

Every array is C-contiguous; kernels allocate nothing; callers (the format) validate. Steps (a
layer, or the flatten a dense layer on a spatial input needs) are described by ``ConvPlan``,
one int64 entry per step::

    op       0 pointwise (1x1 stride 1 conv, dense layer: CSR), 1 full conv (dense weights),
             2 depthwise (dense weights), 3 global average pool, 4 flatten (to (H*W*C,) per sample)
    act      0 linear, 1 ReLU, 2 ReLU6 (after the bias, before the residual add)
    c_in, h_in, w_in, c_out, h_out, w_out, kh, kw, stride, pad_t, pad_l   geometry
    src, dst, res   scratch slots read, written, added after the activation (res -1: none)
    w_off    op 0: first CSR row (absolute into indptr); ops 1, 2: first weight in ``dense_w``
    b_off    first bias of the step in ``bias`` (c_out values; zeros where the layer has none)

    PointwiseCSR  indptr int64[rows + 1] (absolute), indices uint16|int32[nnz] (input channel), data float[nnz]
    dense_w   float[...]  op 1: (c_out, kh, kw, c_in) row-major; op 2: (c, kh, kw)
    x         float[n_batch, n_in]   NHWC flattened, as the format takes it
    scratch   float[n_threads, MARGIN + n_slots * slot + MARGIN]   a worker's slot s starts at
              MARGIN + s * slot; slot >= the largest step output + MARGIN (see _rows_vec)
    out       float[n_batch, n_out]  NHWC flattened

Threads: ``conv_forward`` splits the batch into groups of ``group`` samples and the groups into
one contiguous range per worker (``numba.prange``); a worker runs its groups through every layer
with no barrier, in its own scratch row. Each step runs in a function compiled on its own
(_pointwise_step, _depthwise, _full_conv), called from the group loop: inlined into one large
function, the same loops ran 2-3x slower (LLVM optimized them less; measured, see c925da1).
Checked with ``inspect_asm`` (float32, AVX2): _pointwise_step's inner loop is vfmadd231ps on ymm
registers with the input row as memory operand; _depthwise and _full_conv run vfmadd ymm, with
vblendvps for the edge lanes of _rows_vec; ReLU6 is vmaxps/vminps in registers.
"""

from typing import NamedTuple

import numba
import numpy as np
from llvmlite import ir
from numba import types
from numba.extending import intrinsic

from .simd import Vec, at, vadd, vfma, vload, vrelu, vsplat, vstore, vzeros

__all__ = ["OP_CODES", "ConvPlan", "PointwiseCSR", "conv_forward", "conv_forward_serial", "padded_positions"]

OP_CODES = {"pointwise": 0, "conv": 1, "depthwise": 2, "pool": 3, "flatten": 4}
ACT_CODES = {"linear": 0, "softmax": 0, "relu": 1, "relu6": 2}
LANE_PAD = 8
MARGIN = 32  # values kept free before, between (after each slot) and after the slots; see _rows_vec
GROUP_LANES = 8  # a group this size runs the spatial layers as SIMD over its samples

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
    """``Mp``: ``m`` lanes rounded up to whole 8-lane registers."""
    return -(-m // LANE_PAD) * LANE_PAD


@numba.njit(inline="always")
def _padded(m):
    return -(-m // 8) * 8  # padded_positions, compiled (LANE_PAD)


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
        vty = context.get_value_type(a)
        i64 = ir.IntType(64)
        ity = ir.VectorType(i64, vty.count)
        lanes = ir.Constant(ity, [ir.Constant(i64, k) for k in range(vty.count)])
        undef = ir.Constant(ity, ir.Undefined)
        zeros = ir.Constant(ir.VectorType(ir.IntType(32), vty.count), [0] * vty.count)

        def splat(v, t):
            v = context.cast(builder, v, t, types.int64)
            return builder.shuffle_vector(builder.insert_element(undef, v, ir.Constant(ir.IntType(32), 0)), undef,
                                          zeros)

        keep = builder.and_(builder.icmp_signed(">=", lanes, splat(args[1], sig.args[1])),
                            builder.icmp_signed("<", lanes, splat(args[2], sig.args[2])))
        return builder.select(keep, args[0], ir.Constant(vty, None))

    return a(a, lo, hi), codegen


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
    them (into padding lanes only), and stale values there could be denormal or grow."""
    for k in range(m, mp):
        buf[row + k] = 0


@numba.njit(inline="always")
def _pw_tile(csr, r0, n_out, bias, b0, buf, so, mp_in, do, mp_out, ro, m0, act, lanes):
    """Output rows r0:r0 + n_out, lanes m0:m0 + lanes: two accumulators per row in registers
    (even and odd kept weights), so that consecutive FMAs do not wait on each other."""
    indptr, indices, data = csr.indptr, csr.indices, csr.data
    for o in range(n_out):
        b = bias[b0 + o]
        a0 = vsplat(b, lanes)
        a1 = vzeros(b, lanes)
        p = indptr[r0 + o]
        end = indptr[r0 + o + 1]
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
def _taps(buf, w, wb, cs, n_c, c_step, ib, h_in, w_in, p, q, kh, kw, s, pt, pl, g, gi, acc):
    """acc + the window sum of output (p, q) of sample gi: input channels k < n_c at ib + k * c_step,
    weights w[wb + (i * kw + j) * cs + k]; taps outside the input are zeros. Scalar, in registers:
    even kernel rows onto acc, odd ones onto a second sum (two FMA chains, not one), in the same
    order as the vector paths, so that a sample's result does not depend on the path it took."""
    odd = acc * 0
    for i in range(kh):
        row = p * s + i - pt
        if row < 0 or row >= h_in:
            continue
        for j in range(kw):
            col = q * s + j - pl
            if col < 0 or col >= w_in:
                continue
            for k in range(n_c):
                v = at(buf, ib + k * c_step + (row * w_in + col) * g + gi)
                if i % 2 == 0:
                    acc += at(w, wb + (i * kw + j) * cs + k) * v
                else:
                    odd += at(w, wb + (i * kw + j) * cs + k) * v
    return acc + odd


@numba.njit(inline="always")
def _taps_vec(buf, w, wb, cs, n_c, c_step, ib, h_in, w_in, p, q, kh, kw, s, pt, pl, acc, lanes):
    """_taps for all ``lanes`` samples of a group at once (they are contiguous): each tap inside the
    input is one FMA of a broadcast weight with a vector of samples; even and odd kernel rows in
    two accumulators, so that consecutive FMAs do not wait on each other."""
    odd = vzeros(at(w, wb), lanes)
    for i in range(kh):
        row = p * s + i - pt
        if row < 0 or row >= h_in:
            continue
        for j in range(kw):
            col = q * s + j - pl
            if col < 0 or col >= w_in:
                continue
            for k in range(n_c):
                v = vload(buf, ib + k * c_step + (row * w_in + col) * lanes, lanes)
                if i % 2 == 0:
                    acc = vfma(acc, at(w, wb + (i * kw + j) * cs + k), v)
                else:
                    odd = vfma(odd, at(w, wb + (i * kw + j) * cs + k), v)
    return vadd(acc, odd)


@numba.njit(inline="always")
def _rows_vec(buf, w, wb, n_c, c_step, ib, h_in, w_in, h_out, w_out, kh, kw, pt, pl, b, ob, rb, act):
    """One sample's output plane at stride 1, 8 outputs of a row at a time: each tap one FMA of
    the 8 shifted inputs, the lanes whose input column lies outside the row zeroed (_vkeep).

    Loads reach up to ``pl`` values before a row and ``kw + 7`` after it, and a row's last chunk
    stores up to 7 values past the row (into the next row or channel, written after it, or the
    padding lanes, zeroed after it): the format leaves MARGIN values around the slots."""
    for p in range(h_out):
        q = 0
        while q < w_out:
            a = vsplat(b, 8)
            odd = vzeros(b, 8)  # odd kernel rows: a second FMA chain
            for i in range(kh):
                row = p + i - pt
                if row < 0 or row >= h_in:
                    continue
                for j in range(kw):
                    lo, hi = pl - j - q, w_in + pl - j - q
                    for k in range(n_c):
                        v = _vkeep(vload(buf, ib + k * c_step + row * w_in + q + j - pl, 8), lo, hi)
                        if i % 2 == 0:
                            a = vfma(a, at(w, wb + (i * kw + j) * n_c + k), v)
                        else:
                            odd = vfma(odd, at(w, wb + (i * kw + j) * n_c + k), v)
            a = vadd(a, odd)
            _finish_vec(a, buf, ob + p * w_out + q, act, rb + p * w_out + q if rb >= 0 else -1, 8)
            q += 8


@numba.njit(inline="always")
def _spatial(plan, l, dense_w, bias, buf, so, mp_in, do, mp_out, ro, g, depthwise):
    """A full or depthwise convolution of one group, dense weights, with bias, activation and
    residual add fused into one pass over the outputs. A group of GROUP_LANES samples runs every
    tap as one SIMD FMA over the samples; one sample runs stride-1 rows 8 outputs at a time
    (_rows_vec); anything else is scalar."""
    c_in, h_in, w_in = plan.c_in[l], plan.h_in[l], plan.w_in[l]
    c_out, h_out, w_out = plan.c_out[l], plan.h_out[l], plan.w_out[l]
    kh, kw, s, pt, pl = plan.kh[l], plan.kw[l], plan.stride[l], plan.pad_t[l], plan.pad_l[l]
    w0, b0, act = plan.w_off[l], plan.b_off[l], plan.act[l]
    n_c = 1 if depthwise else c_in
    for o in range(c_out):
        wb = w0 + o * kh * kw * n_c
        b = bias[b0 + o]
        ib = so + (o * mp_in if depthwise else 0)
        if g == 1 and s == 1:
            _rows_vec(buf, dense_w, wb, n_c, mp_in, ib, h_in, w_in, h_out, w_out, kh, kw, pt, pl, b,
                      do + o * mp_out, ro + o * mp_out if ro >= 0 else -1, act)
            _zero_tail(buf, do + o * mp_out, h_out * w_out, mp_out)
            continue
        for p in range(h_out):
            for q in range(w_out):
                ob = do + o * mp_out + (p * w_out + q) * g
                rb = ro + o * mp_out + (p * w_out + q) * g if ro >= 0 else -1
                if g == GROUP_LANES:
                    a = _taps_vec(buf, dense_w, wb, n_c, n_c, mp_in, ib, h_in, w_in, p, q, kh, kw, s, pt, pl,
                                  vsplat(b, GROUP_LANES), GROUP_LANES)
                    _finish_vec(a, buf, ob, act, rb, GROUP_LANES)
                else:
                    for gi in range(g):
                        v = _act(_taps(buf, dense_w, wb, n_c, n_c, mp_in, ib, h_in, w_in, p, q, kh, kw, s, pt, pl,
                                       g, gi, b), act)
                        if ro >= 0:
                            v += buf[rb + gi]
                        buf[ob + gi] = v
        _zero_tail(buf, do + o * mp_out, g * h_out * w_out, mp_out)


@numba.njit(cache=True, nogil=True, fastmath=_FASTMATH)
def _pointwise_step(csr, bias, r0, b0, n_out, buf, so, mp_in, do, mp_out, ro, act):
    """_pointwise compiled on its own (see _depthwise)."""
    _pointwise(csr, bias, r0, b0, n_out, buf, so, mp_in, do, mp_out, ro, act)


@numba.njit(cache=True, nogil=True, fastmath=_FASTMATH)
def _depthwise(plan, l, dense_w, bias, buf, so, mp_in, do, mp_out, ro, g):
    """_spatial with one input channel per output (n_c = 1 known when compiled, so the channel
    loop folds away). Compiled on its own, as is _full_conv: inside _group's one big function
    LLVM optimized these loops less well."""
    _spatial(plan, l, dense_w, bias, buf, so, mp_in, do, mp_out, ro, g, True)


@numba.njit(cache=True, nogil=True, fastmath=_FASTMATH)
def _full_conv(plan, l, dense_w, bias, buf, so, mp_in, do, mp_out, ro, g):
    _spatial(plan, l, dense_w, bias, buf, so, mp_in, do, mp_out, ro, g, False)


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
    for c in range(c_in):
        for k in range(hw):
            for gi in range(g):
                buf[do + (k * c_in + c) * mp_out + gi] = buf[so + c * mp_in + k * g + gi]
    for r in range(c_in * hw):
        _zero_tail(buf, do + r * mp_out, g, mp_out)


@numba.njit(cache=True, nogil=True, fastmath=_FASTMATH)
def _group(plan, csr, dense_w, bias, x, n0, g, buf, slot, out):
    """Samples n0:n0 + g through every step, in scratch ``buf``. Compiled on its own, not inlined
    into conv_forward's parallel loop, which calls it once per group."""
    c, hw = plan.c_in[0], plan.h_in[0] * plan.w_in[0]
    so, mp = MARGIN + plan.src[0] * slot, _padded(g * hw)
    for ch in range(c):  # NHWC rows of x to channel rows, padding lanes zeroed
        for gi in range(g):
            for k in range(hw):
                buf[so + ch * mp + k * g + gi] = x[n0 + gi, k * c + ch]
        _zero_tail(buf, so + ch * mp, g * hw, mp)
    n_steps = plan.op.shape[0]
    for l in range(n_steps):
        op = plan.op[l]
        mp_in = _padded(g * plan.h_in[l] * plan.w_in[l])
        mp_out = _padded(g * plan.h_out[l] * plan.w_out[l])
        so, do = MARGIN + plan.src[l] * slot, MARGIN + plan.dst[l] * slot
        ro = MARGIN + plan.res[l] * slot if plan.res[l] >= 0 else -1
        if op == 0:
            _pointwise_step(csr, bias, plan.w_off[l], plan.b_off[l], plan.c_out[l], buf, so, mp_in, do, mp_out, ro,
                       plan.act[l])
        elif op == 2:
            _depthwise(plan, l, dense_w, bias, buf, so, mp_in, do, mp_out, ro, g)
        elif op == 1:
            _full_conv(plan, l, dense_w, bias, buf, so, mp_in, do, mp_out, ro, g)
        elif op == 3:
            _pool(plan, l, buf, so, mp_in, do, mp_out, g)
        else:
            _flatten(plan, l, buf, so, mp_in, do, mp_out, g)
    last = n_steps - 1
    c, hw = plan.c_out[last], plan.h_out[last] * plan.w_out[last]
    do, mp = MARGIN + plan.dst[last] * slot, _padded(g * hw)
    for gi in range(g):
        for k in range(hw):
            for ch in range(c):
                out[n0 + gi, k * c + ch] = buf[do + ch * mp + k * g + gi]


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
