"""Numba kernels by name (no logic here; see each module's contract)."""

from .csr import csr_matmul, csr_matmul_parallel

__all__ = ["csr_matmul", "csr_matmul_parallel"]
