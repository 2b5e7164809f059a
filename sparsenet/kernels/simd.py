"""Explicit SIMD vectors for numba kernels: values LLVM keeps in registers.

numba has no vector type, and an accumulator kept in an array is loaded and stored around
every update: LLVM cannot prove it does not alias the arrays being read. A :class:`Vec` is an
LLVM ``<lanes x float>`` value instead, so a loop that updates one stays in registers; LLVM
splits a wide vector into the machine's registers (a 64-lane float32 vector is four AVX-512
registers, eight AVX2 ones), so the code is correct on any instruction set and the width is a
tile size. Whether a loop's vectors fit in the register file does depend on the instruction
set: that is what :data:`VECTOR_BITS` is for.

``lanes`` must be a compile-time constant: an integer literal at the call site, or an
argument of an ``inline="always"`` helper that was called with one (numba keeps the literal
through inlining). Loads and stores are unaligned and unchecked: callers guarantee that
``offset + lanes`` lies within the array (``offset`` counts elements of the flattened array).
The array must be C-contiguous: loads, stores and :func:`at` refuse any other layout when the
kernel is compiled (a ``TypingError`` naming the array type).

What a vector register holds comes from the CPU numba compiles for (the host, or
``NUMBA_CPU_FEATURES``): :data:`VECTOR_BITS` is 512 where it has AVX-512F, 256 where it has AVX
(AVX2 machines: 16 ``ymm`` registers), else 128 (SSE2 on any x86-64, NEON on ARM); callers size
their vectors with :func:`register_lanes`. The environment variable ``SPARSENET_VECTOR_BITS``
(128, 256 or 512; read once, when this module is imported) replaces the detected width, so that
tests and benchmarks can run another instruction set's tiling on this machine. Nothing compiled
depends on it: LLVM still targets the real CPU, and only the Python wrappers' choices change
(the sparse format's tiles and input blocks), which can move a result by rounding only.

numba's on-disk cache of a kernel is keyed on the kernel's own source file, not on this one:
after editing this module, delete the ``*.nbi``/``*.nbc`` files in ``sparsenet/kernels/__pycache__``
(or touch ``fused.py``), or the cached kernels keep the old code.
"""

import os

import numpy as np
from llvmlite import binding as llvm
from llvmlite import ir
from numba import types
from numba.core import cgutils, config, errors
from numba.extending import intrinsic, models, register_model

__all__ = ["VECTOR_BITS", "at", "register_lanes", "vadd", "vector_bits_of", "vfma", "vload", "vrelu", "vsplat",
           "vstore", "vzeros"]


def vector_bits_of(features: str) -> int:
    """Bits of the widest float vector register an LLVM feature string (``+avx2,-avx512f,...``)
    enables: 512 for AVX-512F (unless ``-evex512`` limits it to 256-bit registers, as AVX10/256
    does), 256 for AVX, else 128 (SSE2, which every x86-64 has; NEON on ARM; other targets)."""
    flags = {f[1:]: f[0] == "+" for f in features.split(",") if f[:1] in "+-" and len(f) > 1}
    if flags.get("avx512f") and flags.get("evex512", True):
        return 512
    return 256 if flags.get("avx") else 128


def _target_features() -> str:
    """The feature string numba compiles for (numba.core.codegen does the same)."""
    if config.CPU_FEATURES is not None:
        return config.CPU_FEATURES
    try:
        return llvm.get_host_cpu_features().flatten()
    except RuntimeError:  # llvmlite cannot ask this host: assume the 128-bit baseline
        return ""


def _vector_bits(override: str | None) -> int:
    if not override:
        return vector_bits_of(_target_features())
    if override not in ("128", "256", "512"):
        raise ValueError(f"SPARSENET_VECTOR_BITS must be 128, 256 or 512, found {override!r}; unset it to use "
                         "the width detected from the CPU")
    return int(override)


VECTOR_BITS: int = _vector_bits(os.environ.get("SPARSENET_VECTOR_BITS"))


def register_lanes(dtype, vector_bits: int = VECTOR_BITS) -> int:
    """Values of ``dtype`` one vector register holds: float32 16 (AVX-512), 8 (AVX2), 4 (SSE2, NEON)."""
    return vector_bits // (8 * np.dtype(dtype).itemsize)


class Vec(types.Type):
    """``lanes`` values of a float ``dtype``, held as one LLVM vector."""

    def __init__(self, dtype, lanes: int):
        self.dtype, self.lanes = dtype, lanes
        super().__init__(name=f"Vec({dtype} x {lanes})")


@register_model(Vec)
class _VecModel(models.PrimitiveModel):
    def __init__(self, dmm, fe_type):
        super().__init__(dmm, fe_type, ir.VectorType(dmm.lookup(fe_type.dtype).get_value_type(), fe_type.lanes))


def _check_c(intrinsic_name: str, arr) -> None:
    """TypingError unless ``arr`` is an array numba knows to be C-contiguous: these intrinsics
    address the flat data, which for any other layout is not the array's elements in order."""
    if isinstance(arr, types.Array) and arr.layout != "C":
        raise errors.TypingError(f"{intrinsic_name} needs a C-contiguous array, found {arr}; pass "
                                 "np.ascontiguousarray(...) from the wrapper")


def _lanes(lanes) -> int | None:
    return lanes.literal_value if isinstance(lanes, types.IntegerLiteral) and lanes.literal_value > 0 else None


def _vector_of(scalar, lanes) -> Vec | None:
    """The vector type of ``lanes`` values of a float scalar's type; None (no match) otherwise."""
    n = _lanes(lanes)
    return Vec(scalar, n) if n is not None and isinstance(scalar, types.Float) else None


def _splat(builder, value, vty):
    undef = ir.Constant(vty, ir.Undefined)
    first = builder.insert_element(undef, value, ir.Constant(ir.IntType(32), 0))
    mask = ir.Constant(ir.VectorType(ir.IntType(32), vty.count), [0] * vty.count)
    return builder.shuffle_vector(first, undef, mask)


def _pointer(context, builder, arr_type, arr, offset, vty):
    data = context.make_array(arr_type)(context, builder, arr).data
    return builder.bitcast(builder.gep(data, [offset]), vty.as_pointer())


@intrinsic(prefer_literal=True)
def vsplat(typingctx, value, lanes):
    """Every lane = value."""
    vt = _vector_of(value, lanes)

    def codegen(context, builder, sig, args):
        return _splat(builder, args[0], context.get_value_type(vt))

    return (vt(value, lanes), codegen) if vt else None


@intrinsic(prefer_literal=True)
def vzeros(typingctx, like, lanes):
    """Zeros of the type of the scalar ``like``."""
    vt = _vector_of(like, lanes)

    def codegen(context, builder, sig, args):
        return ir.Constant(context.get_value_type(vt), None)

    return (vt(like, lanes), codegen) if vt else None


@intrinsic(prefer_literal=True)
def vload(typingctx, arr, offset, lanes):
    """arr.flat[offset:offset + lanes]."""
    _check_c("vload", arr)
    n = _lanes(lanes)
    if n is None or not isinstance(arr, types.Array) or not isinstance(arr.dtype, types.Float):
        return None
    vt = Vec(arr.dtype, n)

    def codegen(context, builder, sig, args):
        vty = context.get_value_type(vt)
        align = context.get_abi_alignment(context.get_value_type(arr.dtype))
        return builder.load(_pointer(context, builder, sig.args[0], args[0], args[1], vty), align=align)

    return vt(arr, offset, lanes), codegen


@intrinsic
def vstore(typingctx, arr, offset, vec):
    """arr.flat[offset:offset + lanes] = vec."""
    _check_c("vstore", arr)
    if not isinstance(vec, Vec) or not isinstance(arr, types.Array) or arr.dtype != vec.dtype:
        return None

    def codegen(context, builder, sig, args):
        vty = context.get_value_type(vec)
        align = context.get_abi_alignment(context.get_value_type(arr.dtype))
        builder.store(args[2], _pointer(context, builder, sig.args[0], args[0], args[1], vty), align=align)
        return context.get_dummy_value()

    return types.none(arr, offset, vec), codegen


@intrinsic
def vfma(typingctx, acc, w, v):
    """acc + w * v for a scalar w (broadcast) or a vector w of acc's type, lane by lane
    (``llvm.fmuladd``: one fused instruction where the CPU has FMA)."""
    if not isinstance(acc, Vec) or acc != v or not (isinstance(w, (types.Float, types.Integer)) or w == acc):
        return None

    def codegen(context, builder, sig, args):
        vty = context.get_value_type(acc)
        suffix = f"v{vty.count}{'f32' if isinstance(vty.element, ir.FloatType) else 'f64'}"
        fn = cgutils.get_or_insert_function(builder.module, ir.FunctionType(vty, [vty] * 3), f"llvm.fmuladd.{suffix}")
        if isinstance(sig.args[1], Vec):
            return builder.call(fn, [args[1], args[2], args[0]])
        scalar = context.cast(builder, args[1], sig.args[1], acc.dtype)
        return builder.call(fn, [_splat(builder, scalar, vty), args[2], args[0]])

    return acc(acc, w, v), codegen


@intrinsic
def vadd(typingctx, a, b):
    """a + b."""
    if not isinstance(a, Vec) or a != b:
        return None

    def codegen(context, builder, sig, args):
        return builder.fadd(args[0], args[1])

    return a(a, b), codegen


@intrinsic
def vrelu(typingctx, a):
    """Lanes below zero set to zero; NaN stays NaN (as ``if v < 0: v = 0`` does)."""
    if not isinstance(a, Vec):
        return None

    def codegen(context, builder, sig, args):
        zero = ir.Constant(context.get_value_type(a), None)
        return builder.select(builder.fcmp_ordered("<", args[0], zero), zero, args[0])

    return a(a), codegen


@intrinsic
def at(typingctx, arr, i):
    """arr.flat[i] with no wrap-around of negative i and no bounds check (numba adds the first
    to every ``arr[i]`` with a signed i: a compare and two moves in the innermost loop)."""
    _check_c("at", arr)
    if not isinstance(arr, types.Array) or not isinstance(i, types.Integer):
        return None

    def codegen(context, builder, sig, args):
        data = context.make_array(sig.args[0])(context, builder, args[0]).data
        return builder.load(builder.gep(data, [args[1]]))

    return arr.dtype(arr, i), codegen
