"""The registries are the architecture: a format, a pruning method or a layer kind registered from
inside a test reaches the benchmark cases, the report's tables, break-even, roofline and plots
without touching any other file."""

from __future__ import annotations

import dataclasses
from typing import ClassVar

import numpy as np
import pytest

from bench.grid import GRIDS, cases, grid_from_options
from bench.report.formats import describe_registry
from bench.report.plots import figure_names, speedup_figure
from bench.report.render import render_markdown
from bench.report.roofline import roofline_records
from sparsenet import FORMATS, PRUNERS, convert, prune
from sparsenet.formats import formats_for
from sparsenet.host import median_seconds
from sparsenet.layers import LAYER_KINDS
from sparsenet.prune import Pruner
from sparsenet.sizes import network_sizes
from sparsenet.testing import assert_forward_close

import naive
from conftest import random_net


@dataclasses.dataclass(frozen=True)
class ToyCOOForward:
    """A throw-away sparse format: kept weights as coordinate lists, one np.add.at per layer."""

    name: ClassVar[str] = "toy_coo"
    kind: ClassVar[str] = "sparse"
    layer_kinds: ClassVar[frozenset[str]] = frozenset({"dense"})
    activations: ClassVar[frozenset[str]] = frozenset({"relu", "linear", "softmax"})
    pruning: ClassVar[str] = "any"
    summary: ClassVar[str] = "a throw-away coordinate-list format that a test registered"
    style: ClassVar[tuple[str, str]] = ("tab:pink", "X")
    operating_points: ClassVar[bool] = False
    saved_as: ClassVar[str] = "compact"
    layers: tuple

    @classmethod
    def build(cls, masked):
        out = []
        for layer, w, b in zip(masked.net.layers, masked.masked_weights(), masked.masked_biases()):
            rows, cols = np.nonzero(masked.masks.weight[len(out)])
            out.append((rows, cols, w[rows, cols], b, layer.n_out, layer.activation))
        return cls(tuple(out))

    def __call__(self, x):
        h = x
        for rows, cols, vals, bias, n_out, act in self.layers:
            y = np.zeros((h.shape[0], n_out), h.dtype)
            np.add.at(y.T, rows, (vals[:, None] * h.T[cols]))
            if bias is not None:
                y += bias
            h = np.maximum(y, 0) if act == "relu" else y
        return h

    @property
    def nnz(self):
        return sum(layer[0].size for layer in self.layers)

    @property
    def in_memory_bytes(self):
        return sum(r.nbytes + c.nbytes + v.nbytes for r, c, v, *_ in self.layers)


@pytest.fixture
def toy(monkeypatch):
    monkeypatch.setitem(FORMATS, ToyCOOForward.name, ToyCOOForward)
    return ToyCOOForward.name


def _records(net, formats, methods, sparsities, batches, rng):
    """Latency and size records measured here, shaped as the benchmark suite writes them."""
    latency, size = [], []
    for method in methods:
        for s in sparsities:
            masked = prune(net, method, s)
            for fmt in formats:
                if fmt not in formats_for(PRUNERS[method].structured):
                    continue
                forward = convert(masked, fmt)
                for batch in batches:
                    x = rng.standard_normal((batch, net.widths[0])).astype(np.float32)
                    assert_forward_close(forward(x), naive.forward(masked, x))
                    t = median_seconds(forward, x, min_time=0.0, min_rounds=3)
                    latency.append({"dataset": "mnist", "method": method, "sparsity": s, "format": fmt,
                                    "batch": batch, "threads": 1, "median_s": t, "iqr_s": 0.1 * t, "rounds": 3,
                                    "min_s": t, "achieved_sparsity": masked.achieved_sparsity(),
                                    "stage": "oneshot"})
                size.append({"dataset": "mnist", "method": method, "sparsity": s, "format": fmt,
                             "nnz": forward.nnz, **network_sizes(masked, forward)._asdict()})
    return latency, size


def test_a_registered_format_is_benchmarked_and_reported_everywhere(toy, rng):
    ci = grid_from_options({}, "ci")
    assert {c.method for c in cases(ci) if c.format == toy} == set(ci.methods), "one case per method"
    assert not any(c.format == toy for c in cases(ci) if c.stage != "oneshot"), "no operating points asked"
    assert grid_from_options({"formats": f"dense,{toy}"}, "ci").formats == ("dense", toy)

    net = random_net(rng, (40, 32, 24, 10))
    formats = ("dense", "sparse", toy)
    latency, size = _records(net, formats, ("weight",), (0.0, 0.9), (1, 16), rng)
    machine = {"gemm_gflops": 50.0, "cache_gbps": 100.0, "dram_gbps": 10.0, "l3_bytes": 1 << 25, "threads": 1,
               "cores": 1}
    kinds = {name: d["kind"] for name, d in describe_registry().items()}
    results = {
        "environment": {"cpu": "test", "cores": 1, "numba_threads": 1, "blas_threads": 1, "blas": [],
                        "python": "3", "numpy": "2", "scipy": "1", "numba": "0", "tensorflow": None,
                        "platform": "test", "git_commit": None},
        "command": "python -m bench.report", "created": "2026-01-01T00:00:00Z", "elapsed_s": 1.0,
        "grid": {"max_time_s": 0.01}, "formats": describe_registry(),
        "models": [{"dataset": "mnist", "architecture": list(net.widths), "epochs": None, "dense_accuracy": 0.5,
                    "manifest": {"source": "test"}}],
        "accuracy": [], "latency": latency, "size": size, "machine": machine,
        "roofline": roofline_records(latency, size, machine, kinds),
    }
    assert {r["format"] for r in results["roofline"]} == set(formats), "its kind gives it a cost model"
    md = render_markdown(results, [f"{stem}.png" for stem, _ in figure_names(results)])
    latency_table = md[md.index("## Latency"):md.index("## Roofline")]
    assert f"| sparsity | dense | sparse | {toy} |" in latency_table
    assert ToyCOOForward.summary in latency_table
    break_even = md[md.index("## Break-even"):md.index("## Latency")]
    assert (f"sparse format (csr_scipy, csr_numba, csr_numba_par, sparse, sparse_block, sparse_int8, "
            f"sparse_int8_static, sparse_conv, "
            f"{toy})") in break_even
    assert f"| batch | dense | sparse | {toy} |" in md[md.index("## Roofline"):]
    legend = speedup_figure(results, "mnist", "weight").legends[0]
    assert toy in [t.get_text() for t in legend.get_texts()]


def test_a_registered_structured_pruner_gets_the_structured_formats(monkeypatch):
    unit = PRUNERS["unit"]
    monkeypatch.setitem(PRUNERS, "unit_copy", dataclasses.replace(unit, name="unit_copy"))
    full = grid_from_options({}, "full")
    by_method = {m: {c.format for c in cases(full) if c.method == m} for m in full.methods}
    assert "unit_copy" in full.methods and by_method["unit_copy"] == by_method["unit"] >= {"shrunk"}
    assert "shrunk" not in by_method["weight"]
    assert GRIDS["full"].methods is None, "named grids take the registry as it is when asked"


def test_a_format_refuses_layer_kinds_it_does_not_declare(monkeypatch, rng):
    monkeypatch.setattr(ToyCOOForward, "layer_kinds", frozenset({"conv2d"}))
    monkeypatch.setitem(FORMATS, ToyCOOForward.name, ToyCOOForward)
    masked = prune(random_net(rng, (8, 6, 4)), "weight", 0.5)
    with pytest.raises(NotImplementedError, match=r"format 'toy_coo' runs layer kinds \['conv2d'\].*\['dense'\]"):
        convert(masked, ToyCOOForward.name)
    assert ToyCOOForward.name not in formats_for(False)


def test_every_registry_entry_describes_itself():
    assert set(LAYER_KINDS) == {"dense", "conv2d", "depthwise_conv2d", "global_avg_pool"}
    for name, kind in LAYER_KINDS.items():
        assert kind.name == name and kind.layer.kind == name and kind.summary
        assert kind.pruning in ("default", "optional", "never") and kind.weight_ndim >= 2
    assert sum(cls.kind == "baseline" for cls in FORMATS.values()) == 1
    for name, cls in FORMATS.items():
        assert cls.name == name and cls.summary and len(cls.style) == 2 and cls.layer_kinds <= set(LAYER_KINDS)
    for name, p in PRUNERS.items():
        assert p.name == name and p.counts in ("weights", "units") and p.summary and len(p.style) == 3
    assert isinstance(PRUNERS["unit"], Pruner) and PRUNERS["unit"].structured and not PRUNERS["weight"].structured


def test_every_registered_format_has_a_colour_of_its_own():
    """Plots tell formats apart by colour first: two formats sharing one read as one line."""
    colours = [cls.style[0] for cls in FORMATS.values()]
    assert len(set(colours)) == len(colours), sorted(c for c in colours if colours.count(c) > 1)


def test_a_conv_format_is_not_offered_for_mlps():
    """sparse_conv runs an MLP correctly, but `sparse` does that better: the grid leaves it out there."""
    from sparsenet.formats import formats_for

    assert "sparse_conv" not in formats_for(False, {"dense"})
    assert "sparse_conv" in formats_for(False, {"conv2d", "depthwise_conv2d", "global_avg_pool", "dense"},
                                        {"relu6", "linear", "softmax"})
