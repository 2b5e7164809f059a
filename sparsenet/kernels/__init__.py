"""Numba kernels by name (no logic here; see each module's contract)."""

from .conv import ConvPlan, PointwiseCSR, conv_forward, conv_forward_serial
from .csr import csr_matmul, csr_matmul_parallel
from .fused import (
    ACC_REGISTERS,
    LANES,
    BlockedCSR,
    CSCParts,
    DenseBlocks,
    DenseWeights,
    NetworkShape,
    csr_forward_batch,
    dense_forward_vector,
    flatten_dense_vector,
    flatten_vector,
    forward_vector,
    tile_widths,
    unflatten_vector,
)
from .simd import VECTOR_BITS, register_lanes

__all__ = ["ACC_REGISTERS", "LANES", "VECTOR_BITS", "BlockedCSR", "CSCParts", "ConvPlan", "DenseBlocks",
           "DenseWeights", "PointwiseCSR", "conv_forward", "conv_forward_serial",
           "NetworkShape", "csr_forward_batch", "csr_matmul", "csr_matmul_parallel",
           "dense_forward_vector", "flatten_dense_vector", "flatten_vector", "forward_vector", "register_lanes",
           "tile_widths", "unflatten_vector"]
