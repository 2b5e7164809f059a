"""Whole-network sparse forward passes in one compiled call (sparsenet's fastest kernels).

All layers of a network are packed into flat arrays, so one call runs every layer with
bias and ReLU fused in, and no Python runs between layers. Layer ``l`` maps ``widths[l]``
inputs to ``widths[l + 1]`` outputs; ``relu[l]`` says whether its activation is ReLU
(otherwise linear: logits). ``bias`` holds every layer's bias back to back (zeros where a
layer has none), starting at ``bias_off[l]``.

Batched (CSR, rows are output units)::

    indptr   int64[sum(n_out) + 1]  row r owns entries indptr[r]:indptr[r + 1] (absolute)
    indices  uint16|int32[nnz]      input index within the layer
    data     float32|float64[nnz]
    row_off  int64[n_layers]        first row of layer l in indptr
    x        float[n_tiles, n_in, T]         tile-major: sample t*T + b at [t, :, b]
    buf_a, buf_b float[n_tiles, max_width, T]  scratch, overwritten
    out      float[n_tiles, n_out, T]        overwritten

Batch 1, per layer either CSC (columns are input units) or dense blocks::

    colptr   int64[sum(parts * n_in) + 1]  column c owns entries colptr[c]:colptr[c + 1] (absolute)
    rows     uint16|int32[nnz]      output index within the layer
    col_off  int64[n_layers]        first column of layer l in colptr
    parts    int64[n_layers]        row blocks of layer l, each packed as its own CSC
    dense    float[...]             dense blocks back to back, block p row-major (n_in, dense_width[p])
    dense_off, dense_r0, dense_width  int64[n_blocks]: where block p starts, its first output, its width
    dense_part0  int64[n_layers + 1]  layer l's dense blocks are dense_part0[l]:dense_part0[l + 1] (none: CSC)
    x        float[n_in]; buf_a, buf_b float[max_width]; out float[n_out]

Batch 1, dense (the shrunk format; x and buffers as above)::

    weight_t float[sum(n_in * n_out)]  layer l's (n_in, n_out) matrix, row-major, from w_off[l]
    w_off    int64[n_layers]

The batch-1 kernels walk only the inputs that are non-zero: ReLU outputs and blank
pixels are exact zeros, and their weights cannot change the result (IEEE: 0 * finite = 0;
a NaN or inf weight behind a zero input is skipped, the one place these kernels differ from
dense arithmetic). Callers (sparsenet.formats.fused) validate; nothing here checks shapes.
"""

import numba

# "contract" lets LLVM fuse multiply-add; no "reassoc" (it would vectorize gathers, which are
# slower than scalar loads on the AMD cores this was tuned on) and no "nnan"/"ninf".
_FASTMATH = {"contract"}


@numba.njit(inline="always")
def _row(indptr, indices, data, r, src, dst, t, i, b0, relu):
    """dst[t, i, :] = act(sum_p data[p] * src[t, indices[p], :] + b0), eight stored weights per pass.

    Plain 3-D indexing from 0: no row views (a view per weight costs an atomic reference-count
    update shared between threads) and no offset indices (numba cannot prove ``c0 + b`` is
    non-negative, adds wrap-around code and the loop no longer vectorizes). The accumulator
    row is loaded and stored once per pass, so more weights per pass means less traffic:
    eight beat four by 3-15% across sparsity 0.5-0.99 and batch 64/1024 (measured here).
    """
    n = dst.shape[2]
    for b in range(n):
        dst[t, i, b] = b0
    p = indptr[r]
    end = indptr[r + 1]
    while p + 8 <= end:
        w0, w1, w2, w3 = data[p], data[p + 1], data[p + 2], data[p + 3]
        w4, w5, w6, w7 = data[p + 4], data[p + 5], data[p + 6], data[p + 7]
        j0, j1, j2, j3 = indices[p], indices[p + 1], indices[p + 2], indices[p + 3]
        j4, j5, j6, j7 = indices[p + 4], indices[p + 5], indices[p + 6], indices[p + 7]
        for b in range(n):
            dst[t, i, b] += (w0 * src[t, j0, b] + w1 * src[t, j1, b] + w2 * src[t, j2, b] + w3 * src[t, j3, b]) + (
                w4 * src[t, j4, b] + w5 * src[t, j5, b] + w6 * src[t, j6, b] + w7 * src[t, j7, b])
        p += 8
    while p + 4 <= end:
        w0, w1, w2, w3 = data[p], data[p + 1], data[p + 2], data[p + 3]
        j0, j1, j2, j3 = indices[p], indices[p + 1], indices[p + 2], indices[p + 3]
        for b in range(n):
            dst[t, i, b] += w0 * src[t, j0, b] + w1 * src[t, j1, b] + w2 * src[t, j2, b] + w3 * src[t, j3, b]
        p += 4
    while p < end:
        w0, j0 = data[p], indices[p]
        for b in range(n):
            dst[t, i, b] += w0 * src[t, j0, b]
        p += 1
    if relu:
        for b in range(n):
            if dst[t, i, b] < 0:
                dst[t, i, b] = 0


@numba.njit(inline="always")
def _layer_buffers(l, n_layers, x, buf_a, buf_b, out):
    """(src, dst) of layer l: x -> a -> b -> a ... -> out."""
    src = x if l == 0 else (buf_a if l % 2 == 1 else buf_b)
    if l == n_layers - 1:
        dst = out
    elif l % 2 == 0:
        dst = buf_a
    else:
        dst = buf_b
    return src, dst


@numba.njit(parallel=True, cache=True, nogil=True, fastmath=_FASTMATH)
def csr_forward_batch(indptr, indices, data, bias, bias_off, row_off, widths, relu, x, buf_a, buf_b, out,
                      by_tiles):
    """out = network(x) for a batch in tile-major layout.

    Shapes: x (n_tiles, n_in, T), buf_a/buf_b (n_tiles, max_width, T), out (n_tiles, n_out, T);
    sample ``t * T + b`` lives at ``[t, :, b]``. With ``by_tiles`` (callers pass it when there
    are at least two tiles per thread) threads take whole tiles through every layer, with no
    barrier between layers; otherwise each layer's rows are split across threads, one tile at
    a time. A T-wide tile keeps the input rows a
    layer gathers from in the core's cache.
    """
    n_layers = widths.shape[0] - 1
    n_tiles = x.shape[0]
    if by_tiles:
        for t in numba.prange(n_tiles):  # tile t writes only [t]: no races
            for l in range(n_layers):
                src, dst = _layer_buffers(l, n_layers, x, buf_a, buf_b, out)
                r0, b0, act = row_off[l], bias_off[l], relu[l]
                for i in range(widths[l + 1]):
                    _row(indptr, indices, data, r0 + i, src, dst, t, i, bias[b0 + i], act)
    else:
        for t in range(n_tiles):
            for l in range(n_layers):
                src, dst = _layer_buffers(l, n_layers, x, buf_a, buf_b, out)
                r0, b0, act = row_off[l], bias_off[l], relu[l]
                for i in numba.prange(widths[l + 1]):  # row i writes only [t, i]: no races
                    _row(indptr, indices, data, r0 + i, src, dst, t, i, bias[b0 + i], act)
    return out


@numba.njit(inline="always")
def _csc_part(colptr, rows, data, bias, b0, c0, n_in, r0, r1, relu, src, dst):
    """dst[r0:r1] = act(W[r0:r1] @ src + b) from a CSC pack holding only rows r0:r1."""
    for i in range(r0, r1):
        dst[i] = bias[b0 + i]
    for j in range(n_in):
        v = src[j]
        if v != 0:
            for p in range(colptr[c0 + j], colptr[c0 + j + 1]):
                dst[rows[p]] += v * data[p]
    if relu:
        for i in range(r0, r1):
            if dst[i] < 0:
                dst[i] = 0


@numba.njit(inline="always")
def _dense_part(w, bias, b0, r0, width, relu, src, dst):
    """dst[r0:r0 + width] = act(src @ w + b) for a dense (n_in, width) block, zero inputs skipped.

    Indexed from 0 through one view per block (not per weight): the inner loop is a plain
    vectorized axpy over contiguous outputs.
    """
    d = dst[r0:r0 + width]
    for i in range(width):
        d[i] = bias[b0 + r0 + i]
    for j in range(src.shape[0]):
        v = src[j]
        if v != 0:
            for i in range(width):
                d[i] += v * w[j, i]
    if relu:
        for i in range(width):
            if d[i] < 0:
                d[i] = 0


@numba.njit(parallel=True, cache=True, nogil=True, fastmath=_FASTMATH)
def forward_vector(colptr, rows, data, col_off, parts, dense, dense_off, dense_r0, dense_width, dense_part0,
                   bias, bias_off, widths, relu, x, buf_a, buf_b, out):
    """out = network(x) for one sample, skipping every zero input of every layer.

    A layer runs one of two ways. Dense blocks (``dense_part0[l] < dense_part0[l + 1]``):
    block ``p`` is a row-major ``(n_in, dense_width[p])`` matrix at ``dense[dense_off[p]:]``
    holding outputs ``dense_r0[p]`` onwards, zeros included; each non-zero input adds one
    vectorized row. Otherwise CSC: output rows cut into ``parts[l]`` contiguous blocks, each
    packed as its own CSC (block k of layer l owns columns ``col_off[l] + k * n_in + j``);
    each non-zero input scatters its kept weights (scalar). With one block a layer runs
    serially (no thread start-up for small layers); with more, blocks run in parallel and
    each writes only its own rows.
    """
    n_layers = widths.shape[0] - 1
    for l in range(n_layers):
        src, dst = _layer_buffers(l, n_layers, x, buf_a, buf_b, out)
        n_in, n_out, c0, b0, k_parts = widths[l], widths[l + 1], col_off[l], bias_off[l], parts[l]
        p0, n_dense = dense_part0[l], dense_part0[l + 1] - dense_part0[l]
        if n_dense == 1:
            w = dense[dense_off[p0]:dense_off[p0] + n_in * dense_width[p0]].reshape((n_in, dense_width[p0]))
            _dense_part(w, bias, b0, dense_r0[p0], dense_width[p0], relu[l], src[:n_in], dst)
        elif n_dense > 1:
            for k in numba.prange(n_dense):
                p = p0 + k
                w = dense[dense_off[p]:dense_off[p] + n_in * dense_width[p]].reshape((n_in, dense_width[p]))
                _dense_part(w, bias, b0, dense_r0[p], dense_width[p], relu[l], src[:n_in], dst)
        elif k_parts == 1:
            _csc_part(colptr, rows, data, bias, b0, c0, n_in, 0, n_out, relu[l], src, dst)
        else:
            for k in numba.prange(k_parts):
                _csc_part(colptr, rows, data, bias, b0, c0 + k * n_in, n_in, k * n_out // k_parts,
                          (k + 1) * n_out // k_parts, relu[l], src, dst)
    return out


@numba.njit(cache=True, nogil=True, fastmath=_FASTMATH)
def dense_forward_vector(weight_t, w_off, bias, bias_off, widths, relu, x, buf_a, buf_b, out):
    """out = network(x) for one sample through dense matrices, skipping zero inputs.

    ``weight_t`` holds every layer's ``(n_in, n_out)`` matrix row-major, back to back, layer
    ``l`` from ``w_off[l]``: input ``j``'s weights are contiguous, so each non-zero input adds
    one vectorized ``v * row`` to the outputs (no reduction, so no reassociation is needed
    to vectorize). Serial on purpose: the shrunk networks this runs are small enough that
    waking a second thread costs more than it saves.
    """
    n_layers = widths.shape[0] - 1
    for l in range(n_layers):
        src, dst = _layer_buffers(l, n_layers, x, buf_a, buf_b, out)
        n_in, n_out, b0 = widths[l], widths[l + 1], bias_off[l]
        w = weight_t[w_off[l]:w_off[l] + n_in * n_out].reshape((n_in, n_out))
        for i in range(n_out):
            dst[i] = bias[b0 + i]
        for j in range(n_in):
            v = src[j]
            if v != 0:
                for i in range(n_out):
                    dst[i] += v * w[j, i]
        if relu[l]:
            for i in range(n_out):
                if dst[i] < 0:
                    dst[i] = 0
    return out
