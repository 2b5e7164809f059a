"""test_forward: latency of one forward pass per format, on the trained, pruned networks
(one-shot, and fine-tuned or gradually pruned where the grid asks for those stages).

Pruning, conversion and JIT compilation happen before the timed region; every case first
checks its output on every input it will be timed on against the dense format, with the
project's one tolerance. At batch 1 each timed call takes the next of several test images
(see ``build``); one call of Python (an index step) is timed with every format alike.
"""

import pytest

from sparsenet.host import cpu_sample, others_load
from sparsenet.testing import assert_forward_close


class Cycle:
    """``forward`` on the next input batch each call; ``last`` is the index of the latest."""

    def __init__(self, forward, xs):
        self.forward, self.xs, self.last = forward, xs, -1

    def __call__(self):
        self.last = (self.last + 1) % len(self.xs)
        return self.forward(self.xs[self.last])


def test_forward(benchmark, dataset, method, sparsity, batch, fmt, stage, build, threads, file_sizes, quiet):
    # one group per network and batch size: pytest-benchmark's table and its compare show every
    # format of a cell side by side, with ratios to the fastest of that cell only
    benchmark.group = f"{dataset} {method} {stage} sparsity={sparsity:g} batch={batch}"
    try:
        forward, xs, expected, masked = build(dataset, method, sparsity, fmt, batch, stage)
    except NotImplementedError as exc:  # the format cannot run this network (an activation, a layer kind)
        pytest.skip(f"{fmt}: {exc}")
    check = getattr(forward, "assert_close", assert_forward_close)  # a format with its own tolerance (TFLite int8)
    for x, want in zip(xs, expected):  # also compiles numba kernels outside the timing
        check(forward(x), want)
    benchmark.extra_info.update(
        dataset=dataset, method=method, scope=masked.scope, sparsity=sparsity, stage=stage,
        achieved_sparsity=masked.achieved_sparsity(), format=fmt, batch=batch, threads=threads,
        nnz=forward.nnz, inputs=len(xs), saved_as=forward.saved_as,
    )
    step = Cycle(forward, xs)
    waited = 0.0 if benchmark.disabled else quiet.wait()  # a busy machine is waited out (bounded)
    before = cpu_sample()
    result = benchmark(step)
    load = others_load(before, cpu_sample())  # cores other processes took while this case was timed
    benchmark.extra_info.update(others_load=load, waited_s=round(waited, 2))
    check(result, expected[step.last])
    if hasattr(forward, "choice"):  # an adaptive format: the candidate it ran at this batch size
        benchmark.extra_info["choice"] = forward.choice(batch)
    if stage == "oneshot":  # sizes after the timed calls: auto counts the candidate it chose
        on_disk, zipped = file_sizes(masked, forward.saved_as)
        benchmark.extra_info.update(in_memory_bytes=forward.in_memory_bytes, on_disk_bytes=on_disk,
                                    zipped_bytes=zipped)
