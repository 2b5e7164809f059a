"""Numba kernels by name (no logic here; see each module's contract)."""

from .csr import csr_matmul, csr_matmul_parallel
from .fused import (LANES, BlockedCSR, CSCParts, DenseBlocks, DenseWeights, NetworkShape, csr_forward_batch,
                    dense_forward_vector, forward_vector)

__all__ = ["LANES", "BlockedCSR", "CSCParts", "DenseBlocks", "DenseWeights", "NetworkShape", "csr_forward_batch",
           "csr_matmul", "csr_matmul_parallel", "dense_forward_vector", "forward_vector"]
