"""Whole-network forward passes with int8 weights *and* int8 activations: integer dot products.

The static-mode network of :mod:`sparsenet.quantize` (weights one scale per unit, every layer's
input rounded to its own int8 grid ``a``) computed as the quantization spells it: each layer sums
int8 x int8 products exactly in int32, scales once, adds the bias, applies ReLU and rounds the
result onto the next layer's grid; only the last layer's sums leave as float. Batched, on tiles
of T samples (T = 16, 32 or 64) like :mod:`sparsenet.kernels.fused`, but with inputs in groups of
four (the unit of an integer dot-product instruction)::

    activations  uint8 [tile][group g][sample s][4]   byte k: input 4g + k of sample s, as q + off
    gptr         int64[rows + 1]     CSR over groups: row i keeps groups groups[gptr[i]:gptr[i+1]]
    groups       uint16/int32        the group of each kept word
    words        int32               its four int8 weights, byte k for input 4g + k (0 where pruned)
    per row i    mult = weight scale * input step a, bias, corr = off * sum of the row's weights
    per layer    off (0 after ReLU, else 128: the stored byte is q + off), inv = 1 / next layer's a

    layer l, row i:  acc = sum over kept groups of dot4(bytes, word)          (int32, exact)
                     y   = act(mult[i] * float(acc - corr[i]) + bias[i])
                     next layer's byte = clip(rint(y * inv[l]), -127, 127) + off[l + 1]

A stored byte is unsigned (``q + off``, 0..254): the instruction multiplies unsigned by signed
bytes, and ``corr`` takes the offset back out exactly. The sum of a row stays below 2**31 for up
to 66,000 inputs (254 * 127 per input); the format refuses wider layers. The four rows of one
output group are finished together, their rounded bytes interleaved in registers into one
64-byte store per 16 samples.

``dot4``: ``vpdpbusd`` (AVX-512 VNNI, 16 int32 lanes per instruction) where numba compiles for a
CPU with it and 512-bit vectors, else portable LLVM IR (widen, multiply, add the four products of
each lane) that any target lowers: AVX2 ``vpmaddwd`` / ``vpmulld`` sequences, NEON, SSE2. The
kernels take ``portable``: True runs the portable form even where VNNI exists (tests prove both).

``static_forward_batch(ints, gptr, groups, words, mult, bias, corr, inv, x, xq, buf_a, buf_b, out,
n_threads, portable)``: ``x`` float32 (n_batch, n_in); ``xq``, ``buf_a``, ``buf_b`` uint8 tile
buffers (their sizes fix the group strides, see :func:`buffer_groups`); ``out`` float32
(n_tiles, n_out, T); ``ints`` from :func:`flatten_static`.

``static_forward_vector(ints, dwords, w_off, n_pad, mult, bias, corr, inv, x, u_in, u_a, u_b, out,
n_threads, portable)``: one sample, every layer's words dense (see its docstring).

Callers validate; nothing here checks.
"""

import numba
import numpy as np
from llvmlite import ir
from numba import types
from numba.core import cgutils
from numba.extending import intrinsic

from .fused import _FASTMATH
from .simd import Vec, _target_features, at, vfma, vrelu, vsplat, vstore

__all__ = ["HAS_VNNI", "PARALLEL_WORDS", "buffer_groups", "flatten_static", "static_forward_batch",
           "static_forward_vector"]

_I32 = ir.IntType(32)
_V16 = ir.VectorType(_I32, 16)
I32x16 = Vec(types.int32, 16)
F32x16 = Vec(types.float32, 16)


def _has_vnni(features: str) -> bool:
    flags = {f[1:]: f[0] == "+" for f in features.split(",") if f[:1] in "+-" and len(f) > 1}
    return bool(flags.get("avx512vnni") and flags.get("avx512f") and flags.get("evex512", True))


HAS_VNNI: bool = _has_vnni(_target_features())
# static_forward_vector splits a layer of at least this many words (4 weights each) across threads
PARALLEL_WORDS = 25_000


def _byte_pointer(context, builder, arr_type, arr, offset):
    data = context.make_array(arr_type)(context, builder, arr).data
    return builder.bitcast(builder.gep(data, [offset]), _V16.as_pointer())


@intrinsic
def izeros(typingctx):
    """16 int32 zeros."""
    def codegen(context, builder, sig, args):
        return ir.Constant(_V16, None)
    return I32x16(), codegen


@intrinsic
def iload(typingctx, arr, offset):
    """The 64 bytes of a uint8 array from ``offset`` (in bytes), as 16 int32 lanes."""
    if not (isinstance(arr, types.Array) and arr.dtype == types.uint8 and arr.layout == "C"):
        return None

    def codegen(context, builder, sig, args):
        return builder.load(_byte_pointer(context, builder, sig.args[0], args[0], args[1]), align=1)
    return I32x16(arr, offset), codegen


@intrinsic
def istore(typingctx, arr, offset, vec):
    """The 64 bytes of a uint8 array from ``offset`` = vec's 16 int32 lanes."""
    if not (isinstance(arr, types.Array) and arr.dtype == types.uint8 and arr.layout == "C" and vec == I32x16):
        return None

    def codegen(context, builder, sig, args):
        builder.store(args[2], _byte_pointer(context, builder, sig.args[0], args[0], args[1]), align=1)
        return context.get_dummy_value()
    return types.none(arr, offset, vec), codegen


def _splat32(builder, value):
    undef = ir.Constant(_V16, ir.Undefined)
    first = builder.insert_element(undef, value, ir.Constant(_I32, 0))
    return builder.shuffle_vector(first, undef, ir.Constant(_V16, [0] * 16))


def _portable_dot4(builder, acc, x, w):
    """acc + per lane sum_k u8(x byte k) * s8(w byte k), in plain LLVM IR."""
    b64 = ir.VectorType(ir.IntType(8), 64)
    w64 = ir.VectorType(_I32, 64)
    xs = builder.zext(builder.bitcast(x, b64), w64)
    ws = builder.sext(builder.bitcast(w, b64), w64)
    prod = builder.mul(xs, ws)
    total = acc
    for k in range(4):
        part = builder.shuffle_vector(prod, ir.Constant(w64, ir.Undefined), ir.Constant(_V16, list(range(k, 64, 4))))
        total = builder.add(total, part)
    return total


def _dot4(portable: bool):
    @intrinsic
    def dot4(typingctx, acc, x, w):
        """w: one word (an integer, broadcast) or 16 words (I32x16)."""
        if acc != I32x16 or x != I32x16 or not (isinstance(w, types.Integer) or w == I32x16):
            return None

        def codegen(context, builder, sig, args):
            if sig.args[2] == I32x16:
                ws = args[2]
            else:
                ws = _splat32(builder, context.cast(builder, args[2], sig.args[2], types.int32))
            if HAS_VNNI and not portable:
                fn = cgutils.get_or_insert_function(builder.module, ir.FunctionType(_V16, [_V16] * 3),
                                                    "llvm.x86.avx512.vpdpbusd.512")
                return builder.call(fn, [args[0], args[1], ws])
            return _portable_dot4(builder, args[0], args[1], ws)
        return I32x16(acc, x, w), codegen
    return dot4


dot4_native = _dot4(False)  # vpdpbusd where the CPU has AVX-512 VNNI, else the portable IR
dot4_portable = _dot4(True)


@intrinsic
def iload32(typingctx, arr, offset):
    """arr[offset:offset + 16] of a C-contiguous int32 array."""
    if not (isinstance(arr, types.Array) and arr.dtype == types.int32 and arr.layout == "C"):
        return None

    def codegen(context, builder, sig, args):
        data = context.make_array(sig.args[0])(context, builder, args[0]).data
        return builder.load(builder.bitcast(builder.gep(data, [args[1]]), _V16.as_pointer()), align=4)
    return I32x16(arr, offset), codegen


@intrinsic
def hsum(typingctx, acc):
    """The sum of the 16 lanes (int32, wrapping like the lanes)."""
    if acc != I32x16:
        return None

    def codegen(context, builder, sig, args):
        fn = cgutils.get_or_insert_function(builder.module, ir.FunctionType(_I32, [_V16]),
                                            "llvm.vector.reduce.add.v16i32")
        return builder.call(fn, [args[0]])
    return types.int32(acc), codegen


@intrinsic
def to_float(typingctx, acc, corr):
    """float32(acc - corr) lane by lane (corr a scalar)."""
    if acc != I32x16 or not isinstance(corr, types.Integer):
        return None

    def codegen(context, builder, sig, args):
        c = _splat32(builder, context.cast(builder, args[1], sig.args[1], types.int32))
        return builder.sitofp(builder.sub(args[0], c), ir.VectorType(ir.FloatType(), 16))
    return F32x16(acc, corr), codegen


@intrinsic
def quant_pack(typingctx, packed, y, inv, off, shift):
    """packed | ((clip(rint(y * inv), -127, 127) + off) << shift): one row's bytes into byte
    ``shift / 8`` of each lane."""
    if packed != I32x16 or y != F32x16:
        return None

    def codegen(context, builder, sig, args):
        fvec = ir.VectorType(ir.FloatType(), 16)
        inv = context.cast(builder, args[2], sig.args[2], types.float32)
        scaled = builder.fmul(args[1], builder.shuffle_vector(
            builder.insert_element(ir.Constant(fvec, ir.Undefined), inv, ir.Constant(_I32, 0)),
            ir.Constant(fvec, ir.Undefined), ir.Constant(_V16, [0] * 16)))
        rint = cgutils.get_or_insert_function(builder.module, ir.FunctionType(fvec, [fvec]), "llvm.rint.v16f32")
        lo, hi = ir.Constant(fvec, [-127.0] * 16), ir.Constant(fvec, [127.0] * 16)
        r = builder.call(rint, [scaled])
        r = builder.select(builder.fcmp_ordered("<", r, lo), lo, r)
        r = builder.select(builder.fcmp_ordered(">", r, hi), hi, r)  # NaN: neither, fptosi below
        q = builder.add(builder.fptosi(r, _V16), _splat32(builder, context.cast(builder, args[3], sig.args[3],
                                                                               types.int32)))
        q = builder.and_(q, ir.Constant(_V16, [255] * 16))
        s = _splat32(builder, context.cast(builder, args[4], sig.args[4], types.int32))
        return builder.or_(args[0], builder.shl(q, s))
    return I32x16(packed, y, inv, off, shift), codegen


# flatten_static's ints: 7 bounds, then these int64 arrays back to back
_FLAT = ("widths", "relu", "row_off", "off", "blk_off", "n_blocks")


def flatten_static(widths, relu, row_off, off, blk_off, n_blocks) -> np.ndarray:
    """static_forward_batch's ``ints``: the widths, ReLU flags, each layer's first unit (its
    index into mult/bias/corr), each layer's input offset (0 or 128), each layer's first CSR row
    and its number of input blocks (CSR row of block k, unit i: blk_off + k * n_out + i), as one
    int64 array."""
    parts = [np.asarray(p, np.int64) for p in (widths, relu, row_off, off, blk_off, n_blocks)]
    bounds = len(parts) + 1 + np.cumsum([0] + [p.size for p in parts])
    return np.concatenate([bounds] + parts).astype(np.int64)


def buffer_groups(widths) -> tuple[int, int]:
    """(input groups, hidden groups): the group strides of ``xq`` and of ``buf_a``/``buf_b``."""
    widths = np.asarray(widths, np.int64)
    return int(-(-widths[0] // 4)), int(-(-widths[1:-1].max(initial=1) // 4))


@numba.njit(inline="always")
def _dot(acc, x, w, portable):
    if portable:
        return dot4_portable(acc, x, w)
    return dot4_native(acc, x, w)


@numba.njit(inline="always")
def _finish(acc, corr, m, b, relu):
    y = vfma(vsplat(b, 16), m, to_float(acc, corr))
    return vrelu(y) if relu else y


@numba.njit(inline="always")
def _groups(gptr, groups, words, mult, bias, corr, r0, blk0, n_blk, n_out, g0, g1, src, so, dst, do, out, oo, part,
            po, relu, last, inv, off_next, lanes, portable):
    """Output groups g0:g1 of one layer for one tile: rows 4g..4g+3 summed block by block (all
    rows over one input block before the next, their partial sums kept in ``part``), then
    finished and either rounded and interleaved into ``dst`` (hidden) or stored as float into
    ``out`` (last layer)."""
    step = lanes * 4  # bytes of one input group of a tile, and of one row's int32 sums
    for blk in range(n_blk):
        first, final = blk == 0, blk == n_blk - 1
        for g in range(g0, g1):
            p0, p1, p2, p3 = izeros(), izeros(), izeros(), izeros()
            for k in range(4):
                r = 4 * g + k
                if r >= n_out:
                    break
                rr = blk0 + blk * n_out + r
                pr = po + r * step
                if first:
                    a0, a1, a2, a3 = izeros(), izeros(), izeros(), izeros()
                else:
                    a0, a1, a2, a3 = iload(part, pr), iload(part, pr + 64), iload(part, pr + 128), iload(part, pr + 192)
                for q in range(gptr[rr], gptr[rr + 1]):
                    base = so + np.int64(at(groups, q)) * step
                    w = at(words, q)
                    a0 = _dot(a0, iload(src, base), w, portable)
                    if lanes >= 32:
                        a1 = _dot(a1, iload(src, base + 64), w, portable)
                    if lanes == 64:
                        a2 = _dot(a2, iload(src, base + 128), w, portable)
                        a3 = _dot(a3, iload(src, base + 192), w, portable)
                if not final:
                    istore(part, pr, a0)
                    if lanes >= 32:
                        istore(part, pr + 64, a1)
                    if lanes == 64:
                        istore(part, pr + 128, a2)
                        istore(part, pr + 192, a3)
                    continue
                m, b, c = mult[r0 + r], bias[r0 + r], corr[r0 + r]
                y0 = _finish(a0, c, m, b, relu)
                if last:
                    vstore(out, oo + r * lanes, y0)
                else:
                    p0 = quant_pack(p0, y0, inv, off_next, 8 * k)
                if lanes >= 32:
                    y1 = _finish(a1, c, m, b, relu)
                    if last:
                        vstore(out, oo + r * lanes + 16, y1)
                    else:
                        p1 = quant_pack(p1, y1, inv, off_next, 8 * k)
                if lanes == 64:
                    y2 = _finish(a2, c, m, b, relu)
                    y3 = _finish(a3, c, m, b, relu)
                    if last:
                        vstore(out, oo + r * lanes + 32, y2)
                        vstore(out, oo + r * lanes + 48, y3)
                    else:
                        p2 = quant_pack(p2, y2, inv, off_next, 8 * k)
                        p3 = quant_pack(p3, y3, inv, off_next, 8 * k)
            if final and not last:
                base = do + g * step
                istore(dst, base, p0)
                if lanes >= 32:
                    istore(dst, base + 64, p1)
                if lanes == 64:
                    istore(dst, base + 128, p2)
                    istore(dst, base + 192, p3)


@numba.njit(inline="always")
def _groups_width(gptr, groups, words, mult, bias, corr, r0, blk0, n_blk, n_out, g0, g1, src, so, dst, do, out, oo,
                  part, po, relu, last, inv, off_next, lanes, portable):
    """_groups with the tile width turned into a literal (``portable`` already one)."""
    if lanes == 64:
        _groups(gptr, groups, words, mult, bias, corr, r0, blk0, n_blk, n_out, g0, g1, src, so, dst, do, out, oo,
                part, po, relu, last, inv, off_next, 64, portable)
    elif lanes == 32:
        _groups(gptr, groups, words, mult, bias, corr, r0, blk0, n_blk, n_out, g0, g1, src, so, dst, do, out, oo,
                part, po, relu, last, inv, off_next, 32, portable)
    else:
        _groups(gptr, groups, words, mult, bias, corr, r0, blk0, n_blk, n_out, g0, g1, src, so, dst, do, out, oo,
                part, po, relu, last, inv, off_next, 16, portable)


@numba.njit(nogil=True, fastmath=_FASTMATH)
def _groups_any(gptr, groups, words, mult, bias, corr, r0, blk0, n_blk, n_out, g0, g1, src, so, dst, do, out, oo, part,
                po, relu, last, inv, off_next, lanes, portable):
    """_groups with the tile width and the dot product's form as literals: one compiled copy
    each, shared by both thread splits of static_forward_batch."""
    if portable:
        _groups_width(gptr, groups, words, mult, bias, corr, r0, blk0, n_blk, n_out, g0, g1, src, so, dst, do, out, oo,
                      part, po, relu, last, inv, off_next, lanes, True)
    else:
        _groups_width(gptr, groups, words, mult, bias, corr, r0, blk0, n_blk, n_out, g0, g1, src, so, dst, do, out, oo,
                      part, po, relu, last, inv, off_next, lanes, False)


@numba.njit(nogil=True, fastmath=_FASTMATH)
def _quantize_tile(x, t, lanes, s0, s1, n_in, inv, off, xq, xo):
    """Samples s0:s1 of tile t of the float batch x onto the first layer's grid: xq[xo + (g *
    lanes + s) * 4 + k] = clip(rint(x[t * lanes + s, 4g + k] * inv), -127, 127) + off; samples
    past the batch as 0."""
    n_batch = x.shape[0]
    for s in range(s0, s1):
        i = t * lanes + s
        for j in range(n_in):
            v = x[i, j] * inv if i < n_batch else np.float32(0)
            v = min(max(np.rint(v), np.float32(-127)), np.float32(127))
            xq[xo + ((j >> 2) * lanes + s) * 4 + (j & 3)] = np.uint8(np.int32(v) + off)


@numba.njit(inline="always")
def _tile_layer(ints, gptr, groups, words, mult, bias, corr, inv, xq, buf_a, buf_b, part, out, t, l, c, n_chunks,
                portable):
    """Output-group chunk c of n_chunks of layer l for tile t (buffers: x -> a -> b -> a ...)."""
    widths, relu, row_off = ints[ints[0]:ints[1]], ints[ints[1]:ints[2]], ints[ints[2]:ints[3]]
    off, blk_off, n_blocks = ints[ints[3]:ints[4]], ints[ints[4]:ints[5]], ints[ints[5]:ints[6]]
    n_layers, n_tiles, lanes = widths.shape[0] - 1, out.shape[0], out.shape[2]
    src = xq if l == 0 else (buf_a if l % 2 == 1 else buf_b)
    dst = buf_b if l % 2 == 1 else buf_a
    hid_stride = buf_a.size // n_tiles
    so = t * (xq.size // n_tiles if l == 0 else hid_stride)
    nxt = min(l + 1, n_layers - 1)
    n_out = widths[l + 1]
    n_g = -(-n_out // 4)
    _groups_any(gptr, groups, words, mult, bias, corr, row_off[l], blk_off[l], n_blocks[l], n_out, c * n_g // n_chunks,
                (c + 1) * n_g // n_chunks, src, so, dst, t * hid_stride, out, t * out.shape[1] * lanes, part,
                t * (part.size // n_tiles), relu[l] != 0, l == n_layers - 1, inv[nxt], off[nxt], lanes, portable)


@numba.njit(parallel=True, cache=True, nogil=True, fastmath=_FASTMATH)
def static_forward_batch(ints, gptr, groups, words, mult, bias, corr, inv, x, xq, buf_a, buf_b, part, out, n_threads,
                         portable):
    """out = network(x); see the module docstring. Threads take whole tiles through every layer
    where there are at least two per thread, else split each layer's output groups. ``part``:
    uint8 scratch for the partial sums of input blocks, 4 * T bytes per hidden unit per tile."""
    widths, off = ints[ints[0]:ints[1]], ints[ints[3]:ints[4]]
    n_layers = widths.shape[0] - 1
    n_tiles, lanes = out.shape[0], out.shape[2]
    in_stride = xq.size // n_tiles
    if n_tiles >= 2 * n_threads:
        for t in numba.prange(n_tiles):  # tile t writes only its own rows of every buffer
            _quantize_tile(x, t, lanes, 0, lanes, widths[0], inv[0], off[0], xq, t * in_stride)
            for l in range(n_layers):
                _tile_layer(ints, gptr, groups, words, mult, bias, corr, inv, xq, buf_a, buf_b, part, out, t, l, 0, 1,
                            portable)
    else:
        n_chunks = max(1, n_threads)
        for t in range(n_tiles):
            for c in numba.prange(n_chunks):  # chunk c rounds its samples of tile t
                _quantize_tile(x, t, lanes, c * lanes // n_chunks, (c + 1) * lanes // n_chunks, widths[0], inv[0],
                               off[0], xq, t * in_stride)
            for l in range(n_layers):
                for c in numba.prange(n_chunks):  # chunk c writes only its output groups (and their part rows)
                    _tile_layer(ints, gptr, groups, words, mult, bias, corr, inv, xq, buf_a, buf_b, part, out, t, l, c,
                                n_chunks, portable)
    return out


@numba.njit(inline="always")
def _gemv_rows(dwords, w0, n_pad, r0, i0, i1, mult, bias, corr, src, dst, out, relu, last, inv, off_next, portable):
    """Rows i0:i1 of one layer for one sample: dense int8 rows (zeros stored) against all of the
    input's bytes, 64 at a time, finished as in _groups; hidden results one byte each."""
    for i in range(i0, i1):
        acc = izeros()
        base = w0 + i * n_pad
        for c in range(0, n_pad, 16):
            acc = _dot(acc, iload(src, c * 4), iload32(dwords, base + c), portable)
        y = np.float32(hsum(acc) - corr[r0 + i]) * mult[r0 + i] + bias[r0 + i]
        if relu and y < 0:
            y = np.float32(0)
        if last:
            out[i] = y
        else:
            v = min(max(np.rint(y * inv), np.float32(-127)), np.float32(127))
            dst[i] = np.uint8(np.int32(v) + off_next)


@numba.njit(parallel=True, cache=True, nogil=True, fastmath=_FASTMATH)
def static_forward_vector(ints, dwords, w_off, n_pad, mult, bias, corr, inv, x, u_in, u_a, u_b, out, n_threads,
                          portable):
    """out = network(x) for one sample (``x`` float32 (n_in,), ``out`` (n_out,)): every layer a
    dense int8 matrix (n_out, n_pad[l] words, zeros stored, row-major from w_off[l] in
    ``dwords``) times the input's bytes with 16 words per dot4; layers of PARALLEL_WORDS words
    or more split by rows across threads. ``u_*``: uint8 buffers of max(n_pad) * 4 bytes; bytes
    past a layer's width (stale or zero) meet zero words, so they never count."""
    widths, relu, row_off = ints[ints[0]:ints[1]], ints[ints[1]:ints[2]], ints[ints[2]:ints[3]]
    off = ints[ints[3]:ints[4]]
    n_layers = widths.shape[0] - 1
    for j in range(widths[0]):
        v = min(max(np.rint(x[j] * inv[0]), np.float32(-127)), np.float32(127))
        u_in[j] = np.uint8(np.int32(v) + off[0])
    for l in range(n_layers):
        src = u_in if l == 0 else (u_a if l % 2 == 1 else u_b)
        dst = u_b if l % 2 == 1 else u_a
        nxt = min(l + 1, n_layers - 1)
        n_out, last = widths[l + 1], l == n_layers - 1
        if n_threads > 1 and n_out * n_pad[l] >= PARALLEL_WORDS:
            for c in numba.prange(n_threads):
                _gemv_rows(dwords, w_off[l], n_pad[l], row_off[l], c * n_out // n_threads, (c + 1) * n_out // n_threads,
                           mult, bias, corr, src, dst, out, relu[l] != 0, last, inv[nxt], off[nxt], portable)
        else:
            _gemv_rows(dwords, w_off[l], n_pad[l], row_off[l], 0, n_out, mult, bias, corr, src, dst, out,
                       relu[l] != 0, last, inv[nxt], off[nxt], portable)
    return out
