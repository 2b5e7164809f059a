"""CSR @ dense products compiled with numba.

Contract shared by every function here:
    indptr  int32|int64[n_out + 1]   row i owns entries indptr[i]:indptr[i + 1]
    indices same dtype[nnz]          input-feature index of each stored weight
    data    float32|float64[nnz]     stored weights
    x       float[n_in, n_batch]     C-contiguous, same dtype as data (feature-major activations)
    out     float[n_out, n_batch]    C-contiguous, overwritten
Callers (sparsenet.formats) validate once; nothing here checks shapes.
"""

import numba

# "contract" lets LLVM fuse multiply-add. We keep IEEE NaN/inf semantics (no "nnan"/"ninf"),
# so a corrupted weight shows up as NaN in the output instead of disappearing. "reassoc" is
# needed for the batch-1 dot product to vectorize; it only changes the summation order.
_FASTMATH = {"contract"}
_FASTMATH_DOT = {"contract", "reassoc"}


@numba.njit(inline="always")
def _row_axpy(i, indptr, indices, data, x, out):
    """out[i, :] = sum_p data[p] * x[indices[p], :] -- contiguous over the batch, vectorizes."""
    acc = out[i]
    acc[:] = 0.0
    for p in range(indptr[i], indptr[i + 1]):
        w = data[p]
        src = x[indices[p]]
        for b in range(acc.shape[0]):
            acc[b] += w * src[b]


@numba.njit(inline="always", fastmath=_FASTMATH_DOT)
def _row_dot(i, indptr, indices, data, x, out):
    """out[i, 0] = sum_p data[p] * x[indices[p], 0] -- a gather dot product for batch 1."""
    s = data.dtype.type(0.0)
    for p in range(indptr[i], indptr[i + 1]):
        s += data[p] * x[indices[p], 0]
    out[i, 0] = s


@numba.njit(cache=True, nogil=True, fastmath=_FASTMATH)
def csr_matmul(indptr, indices, data, x, out):
    """out = A @ x, one output row at a time."""
    if x.shape[1] == 1:
        for i in range(indptr.shape[0] - 1):
            _row_dot(i, indptr, indices, data, x, out)
    else:
        for i in range(indptr.shape[0] - 1):
            _row_axpy(i, indptr, indices, data, x, out)
    return out


@numba.njit(parallel=True, cache=True, nogil=True, fastmath=_FASTMATH)
def csr_matmul_parallel(indptr, indices, data, x, out):
    """Same contract as csr_matmul; output rows are split across threads (row i writes only out[i])."""
    if x.shape[1] == 1:
        for i in numba.prange(indptr.shape[0] - 1):
            _row_dot(i, indptr, indices, data, x, out)
    else:
        for i in numba.prange(indptr.shape[0] - 1):
            _row_axpy(i, indptr, indices, data, x, out)
    return out
