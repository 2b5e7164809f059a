"""test_forward: latency of one forward pass per format, on the trained, pruned networks
(one-shot, and fine-tuned or gradually pruned where the grid asks for those stages).

Pruning, conversion and JIT compilation happen before the timed region; every case first
checks its output against the dense format with the project's one tolerance.
"""

from sparsenet.testing import assert_forward_close


def test_forward(benchmark, case, build, threads):
    dataset, method, sparsity, batch, fmt, stage = case
    forward, x, expected, masked = build(dataset, method, sparsity, fmt, batch, stage)
    assert_forward_close(forward(x), expected)  # also compiles numba kernels outside the timing
    benchmark.extra_info.update(
        dataset=dataset, method=method, scope=masked.scope, sparsity=sparsity, stage=stage,
        achieved_sparsity=masked.achieved_sparsity(), format=fmt, batch=batch, threads=threads,
        nnz=forward.nnz, bytes=forward.nbytes,
    )
    result = benchmark(forward, x)
    assert_forward_close(result, expected)
