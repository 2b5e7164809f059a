"""The one definition of "the same output", shared by tests/ and bench/."""

from __future__ import annotations

import numpy as np

# CSR kernels, scipy and BLAS sum the same products in different orders, and FMA contraction
# changes the last bits of each step. Over a 5-layer network with ~1000-term dot products the
# float32 difference stays within a few ulps of the layer's magnitude: rtol 1e-4 / atol 1e-4
# (scaled by the output's magnitude) leaves room for that and still catches a single dropped weight.
RTOL = {np.dtype(np.float32): 1e-4, np.dtype(np.float64): 1e-10}
ATOL = {np.dtype(np.float32): 1e-4, np.dtype(np.float64): 1e-10}


def assert_forward_close(actual: np.ndarray, expected: np.ndarray) -> None:
    """Raise AssertionError unless ``actual`` matches ``expected`` in shape, dtype and values."""
    actual, expected = np.asarray(actual), np.asarray(expected)
    assert actual.shape == expected.shape, f"shape {actual.shape}, expected {expected.shape}"
    assert actual.dtype == expected.dtype, f"dtype {actual.dtype}, expected {expected.dtype}"
    scale = max(1.0, float(np.abs(expected).max(initial=0.0)))
    np.testing.assert_allclose(actual, expected, rtol=RTOL[expected.dtype], atol=ATOL[expected.dtype] * scale)
