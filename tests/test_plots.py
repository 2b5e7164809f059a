"""bench.report.plots on a small hand-made results dict: structure of the figures,
not their pixels."""

import io
import math

import numpy as np
import pytest
from matplotlib.figure import Figure

from bench.report.plots import (
    accuracy_figure,
    disk_figure,
    figure_names,
    latency_figure,
    recovery_figure,
    size_figure,
    speedup_figure,
    tradeoff_figure,
)
from bench.report.plots.style import time_unit
from bench.report.plots.tradeoff import BEST_BOX_GID

SPARSITIES = (0.0, 0.25, 0.5, 0.6, 0.7, 0.8, 0.9, 0.95, 0.97, 0.99)
BATCHES = (1, 64, 256)
ARCHITECTURE = [784, 1000, 1000, 500, 200, 10]
N_WEIGHTS = 784 * 1000 + 1000 * 1000 + 1000 * 500 + 500 * 200 + 200 * 10


def dense_seconds(batch, sparsity):
    """Masked dense does the same work at any sparsity; a little deterministic jitter."""
    return (150e-6 + 25e-6 * batch) * (1 + 0.02 * math.sin(40 * sparsity))


def format_seconds(fmt, batch, sparsity):
    dense, left = dense_seconds(batch, 0.0), 1 - sparsity
    return {
        "dense": dense_seconds(batch, sparsity),
        "csr_scipy": 4.0 * left * dense + 60e-6,
        "csr_numba": 3.0 * left * dense + 15e-6,
        "csr_numba_par": 1.8 * left * dense + 25e-6,
        "shrunk": left**2 * dense + 5e-6,
        "bsr_numba": 2.5 * left * dense + 20e-6,
    }[fmt]


def format_bytes(fmt, sparsity):
    nnz = round((1 - sparsity) * N_WEIGHTS)
    csr = 8 * nnz + 4 * 2710  # data + indices, indptr
    return {"dense": 4 * N_WEIGHTS, "csr_scipy": csr, "csr_numba": csr, "csr_numba_par": csr,
            "shrunk": 4 * round((1 - sparsity) ** 2 * N_WEIGHTS), "bsr_numba": 6 * nnz}[fmt]


def make_results(threads=(2,), extra_format=None):
    """mnist: accuracy, latency and size for both methods; fashion_mnist: accuracy only.

    csr_scipy is missing at 25% sparsity, so its lines have one point fewer.
    """
    formats = {"weight": ["dense", "csr_scipy", "csr_numba", "csr_numba_par"],
               "unit": ["dense", "csr_numba", "shrunk"]}
    if extra_format:
        formats["weight"].append(extra_format)
    models = [{"dataset": d, "architecture": ARCHITECTURE, "epochs": 10, "dense_accuracy": a}
              for d, a in (("mnist", 0.9821), ("fashion_mnist", 0.8934))]
    accuracy = []
    for model in models:
        for method, knee in (("weight", 0.95), ("unit", 0.7)):
            for scope, shift in (("layer", 0.0), ("global", 0.02)):
                for s in SPARSITIES:
                    achieved = s if method == "weight" else 1 - (1 - s) ** 2  # both sides of a unit go
                    drop = max(0.0, (s - knee - shift) / (1 - knee)) ** 2 * 0.8
                    accuracy.append({"dataset": model["dataset"], "method": method, "scope": scope,
                                     "sparsity": s, "achieved_sparsity": achieved,
                                     "accuracy": max(0.1, model["dense_accuracy"] - drop)})
    latency, size = [], []
    for method, fmts in formats.items():
        for fmt in fmts:
            for s in SPARSITIES:
                if fmt == "csr_scipy" and s == 0.25:
                    continue
                saved_as = {"dense": "dense", "shrunk": "shrunk"}.get(fmt, "compact")
                on_disk = {"dense": 4 * N_WEIGHTS, "compact": 6 * round((1 - s) * N_WEIGHTS),
                           "shrunk": format_bytes("shrunk", s)}[saved_as]
                size.append({"dataset": "mnist", "method": method, "sparsity": s, "format": fmt,
                             "in_memory_bytes": format_bytes(fmt, s), "saved_as": saved_as, "on_disk_bytes": on_disk,
                             "zipped_bytes": on_disk if saved_as == "compact" else round(on_disk * (1.05 - s))})
                for batch in BATCHES:
                    for t in threads:
                        median = format_seconds(fmt, batch, s)
                        latency.append({"dataset": "mnist", "method": method, "sparsity": s, "format": fmt,
                                        "batch": batch, "threads": t, "median_s": median,
                                        "iqr_s": 0.06 * median, "rounds": 200})
    return {"models": models, "accuracy": accuracy, "latency": latency, "size": size}


@pytest.fixture
def results():
    return make_results()


def legend_labels(fig):
    (legend,) = fig.legends
    return [t.get_text() for t in legend.get_texts()]


def line(ax, label):
    (found,) = [ln for ln in ax.get_lines() if ln.get_label() == label]
    return found


def test_accuracy_figure_two_panels_one_line_per_method_and_scope(results):
    fig = accuracy_figure(results, "mnist")
    assert isinstance(fig, Figure)
    assert len(fig.axes) == 2
    assert legend_labels(fig) == ["weight pruning, layer scope", "weight pruning, global scope",
                                  "unit pruning, layer scope", "unit pruning, global scope",
                                  "dense (98.21%)"]
    dense = line(fig.axes[0], "dense (98.21%)")
    assert dense.get_linestyle() == "--"
    np.testing.assert_array_equal(dense.get_ydata(), [98.21, 98.21])


def test_accuracy_figure_plots_achieved_sparsity_in_percent(results):
    ax = accuracy_figure(results, "mnist").axes[0]
    unit = line(ax, "unit pruning, layer scope")
    rows = [r for r in results["accuracy"]
            if (r["dataset"], r["method"], r["scope"]) == ("mnist", "unit", "layer")]
    np.testing.assert_allclose(unit.get_xdata(), [r["achieved_sparsity"] for r in rows])
    np.testing.assert_allclose(unit.get_ydata(), [100 * r["accuracy"] for r in rows])


def test_accuracy_figure_without_high_sparsity_has_no_zoom_panel(results):
    results["accuracy"] = [r for r in results["accuracy"] if r["sparsity"] < 0.5]
    assert len(accuracy_figure(results, "mnist").axes) == 1


def test_latency_figure_one_panel_per_batch_formats_from_data(results):
    fig = latency_figure(results, "mnist", "weight")
    assert [ax.get_title() for ax in fig.axes] == ["batch 1", "batch 64", "batch 256"]
    assert legend_labels(fig) == ["dense", "csr_scipy", "csr_numba", "csr_numba_par"]
    assert "shrunk" in legend_labels(latency_figure(results, "mnist", "unit"))
    for ax in fig.axes:
        assert ax.get_yscale() == "log"
        assert line(ax, "dense").get_linestyle() == "--"
        assert line(ax, "dense").get_color() == "black"


def test_latency_figure_format_missing_at_a_sparsity_has_fewer_points(results):
    ax = latency_figure(results, "mnist", "weight").axes[0]
    assert len(line(ax, "csr_numba").get_xdata()) == len(SPARSITIES)
    assert 0.25 not in line(ax, "csr_scipy").get_xdata()
    assert len(line(ax, "csr_scipy").get_xdata()) == len(SPARSITIES) - 1


@pytest.mark.parametrize("seconds, unit", [
    (2.0, "s"), (1.0, "s"), (0.5, "ms"), (1e-3, "ms"), (9.9e-4, "µs"), (5e-7, "µs"),  # one value: largest unit >= 1
    ((4.4e-6, 2.5e-3), "µs"),  # 4.4 to 2500 µs is shorter than 0.0044 to 2.5 ms
    ((20e-6, 16e-3), "ms"),  # 0.02 to 16 ms beats 20 to 16000 µs
    ((170e-6, 0.2), "ms"),  # the reported 170 to 200000 µs reads 0.17 to 200 ms
    ((50e-6, 5e-3), "µs"),  # a tie: the unit without decimals
    ((0.05, 40.0), "s"),
])
def test_time_unit_gives_the_shortest_tick_labels(seconds, unit):
    scale, got = time_unit(seconds)
    assert got == unit and scale == {"s": 1.0, "ms": 1e3, "µs": 1e6}[unit]


def test_latency_figure_picks_a_unit_per_panel(results):
    for r in results["latency"]:
        r["median_s"] *= {1: 1, 64: 1e3, 256: 1e5}[r["batch"]]  # µs, ms and s panels
    fig = latency_figure(results, "mnist", "weight")
    assert [ax.get_ylabel() for ax in fig.axes] == [f"median latency ({u})" for u in ("µs", "ms", "s")]
    for ax, batch, scale in zip(fig.axes, BATCHES, (1e6, 1e3, 1.0)):
        med = [r["median_s"] for r in results["latency"] if (r["method"], r["format"], r["batch"]) ==
               ("weight", "csr_numba", batch)]
        np.testing.assert_allclose(line(ax, "csr_numba").get_ydata(), np.array(med) * scale)


def test_sparsity_axis_ends_where_the_data_ends(results):
    results["latency"] = [r for r in results["latency"] if r["sparsity"] <= 0.9]
    for ax in latency_figure(results, "mnist", "weight").axes:
        assert 0.9 < ax.get_xlim()[1] < 0.95


def add_auto(results, with_choice=True):
    """auto at the unit-pruning grid: it runs shrunk, csr_numba from 95% on, and costs 2% more than its choice."""
    for r in [r for r in results["latency"] if (r["method"], r["format"]) == ("unit", "dense")]:
        choice = "csr_numba" if r["sparsity"] >= 0.95 else "shrunk"
        median = 1.02 * format_seconds(choice, r["batch"], r["sparsity"])
        results["latency"].append(dict(r, format="auto", median_s=median,
                                       **({"auto_choice": choice} if with_choice else {})))
    return results


@pytest.mark.parametrize("figure", [latency_figure, speedup_figure])
def test_auto_lies_under_the_candidate_it_ran_and_rings_it(results, figure):
    from bench.report.plots.style import ADAPTIVE_BAND, format_styles

    fig = figure(add_auto(results), "mnist", "unit")
    styles = format_styles(results)
    for ax, batch in zip(fig.axes, BATCHES):
        band = line(ax, "auto")  # a wide translucent band drawn under the candidates' lines
        assert band.get_linewidth() == ADAPTIVE_BAND["linewidth"] and band.get_alpha() < 1
        assert band.get_zorder() < line(ax, "shrunk").get_zorder()
        chose = {r["sparsity"]: r["auto_choice"] for r in results["latency"]
                 if (r["format"], r["batch"]) == ("auto", batch)}
        for choice in set(chose.values()):
            ring = line(ax, f"auto ran {choice}")
            assert ring.get_marker() == styles[choice][1] and ring.get_markerfacecolor() == "none"
            np.testing.assert_array_equal(ring.get_xdata(), sorted(s for s, c in chose.items() if c == choice))
    assert {"auto ran shrunk", "auto ran csr_numba"} <= set(legend_labels(fig))


def test_auto_without_choices_is_still_a_band_and_claims_nothing(results):
    fig = latency_figure(add_auto(results, with_choice=False), "mnist", "unit")
    assert "auto" in legend_labels(fig) and not any(lab.startswith("auto ran") for lab in legend_labels(fig))
    assert line(fig.axes[0], "auto").get_zorder() < line(fig.axes[0], "shrunk").get_zorder()


def test_speedup_is_the_dense_reference_over_format_median(results):
    """Each point: the median of dense's medians over the batch's records (every method), as in
    the report's tables, over the format's median."""
    fig = speedup_figure(results, "mnist", "weight")
    assert len(fig.axes) == len(BATCHES)
    assert legend_labels(fig) == ["dense", "csr_scipy", "csr_numba", "csr_numba_par"]
    for ax, batch in zip(fig.axes, BATCHES):
        np.testing.assert_array_equal(line(ax, "dense").get_ydata(), [1.0, 1.0])
        reference = np.median([r["median_s"] for r in results["latency"]
                               if (r["dataset"], r["format"], r["batch"]) == ("mnist", "dense", batch)])
        rows = {(r["format"], r["sparsity"]): r["median_s"] for r in results["latency"]
                if (r["method"], r["batch"]) == ("weight", batch)}
        for fmt in ("csr_scipy", "csr_numba", "csr_numba_par"):
            got = line(ax, fmt)
            xs = [s for s in SPARSITIES if (fmt, s) in rows]
            np.testing.assert_array_equal(got.get_xdata(), xs)
            np.testing.assert_allclose(got.get_ydata(), [reference / rows[fmt, s] for s in xs], rtol=1e-12)


def test_one_disturbed_dense_cell_does_not_move_the_speedups(results):
    """A dense cell 10x slow (a busy core) leaves every point where it was: the reference is a
    median over the batch's dense records, not the dense cell of the same sparsity."""
    before = line(speedup_figure(results, "mnist", "weight").axes[0], "csr_numba").get_ydata()
    cell = next(r for r in results["latency"]
                if (r["method"], r["format"], r["batch"], r["sparsity"]) == ("weight", "dense", 1, 0.5))
    cell["median_s"] *= 10
    after = line(speedup_figure(results, "mnist", "weight").axes[0], "csr_numba").get_ydata()
    np.testing.assert_allclose(after, before, rtol=0.5)  # per-cell division would put 0.5 at 10x


def test_size_figure_one_line_per_format_in_megabytes(results):
    fig = size_figure(results, "mnist", "unit")
    assert len(fig.axes) == 1
    assert legend_labels(fig) == ["dense", "csr_numba", "shrunk"]
    np.testing.assert_allclose(line(fig.axes[0], "dense").get_ydata(), 4 * N_WEIGHTS / 1e6)


def test_size_figure_draws_formats_with_identical_bytes_once(results):
    fig = size_figure(results, "mnist", "weight")
    assert legend_labels(fig) == ["dense", "csr_scipy", "csr_numba = csr_numba_par"]
    shared = line(fig.axes[0], "csr_numba = csr_numba_par")
    np.testing.assert_allclose(shared.get_ydata(), [format_bytes("csr_numba", s) / 1e6 for s in SPARSITIES])


def test_disk_figure_one_line_per_file_kind_zipped_where_it_shrinks_and_the_dense_star(results):
    fig = disk_figure(results, "mnist", "unit")
    ax = fig.axes[0]
    assert ax.get_xscale() == "log"
    labels = legend_labels(fig)
    assert labels[:2] == ["dense file", "dense file, zipped"]
    assert "compact .spz" in labels and "compact .spz, zipped" not in labels  # same bytes
    assert "shrunk file" in labels
    assert labels[-1] == f"dense float32 file ({4 * N_WEIGHTS / 1e6:.2f} MB)"
    compact = line(ax, "compact .spz")
    layer = sorted((r["sparsity"], 100 * r["accuracy"]) for r in results["accuracy"]
                   if (r["dataset"], r["method"], r["scope"]) == ("mnist", "unit", "layer"))
    np.testing.assert_allclose(compact.get_ydata(), [a for _, a in layer])  # accuracy at each sparsity, per-layer
    np.testing.assert_allclose(compact.get_xdata(), [6 * round((1 - s) * N_WEIGHTS) / 1e6 for s, _ in layer])


def test_disk_figure_without_file_sizes_says_so(results):
    for r in results["size"]:
        del r["on_disk_bytes"]
    with pytest.raises(ValueError, match="no on-disk sizes"):
        disk_figure(results, "mnist", "unit")
    assert not any(stem.startswith("disk") for stem, _ in figure_names(results))


def test_figure_names_lists_every_figure_with_data_and_skips_the_rest(results):
    assert [stem for stem, _ in figure_names(results)] == [
        "accuracy-fashion_mnist", "accuracy-mnist",
        "latency-mnist-unit", "latency-mnist-weight",
        "speedup-mnist-unit", "speedup-mnist-weight",
        "size-mnist-unit", "size-mnist-weight",
        "disk-mnist-unit", "disk-mnist-weight",
    ]


def test_figure_names_skips_speedup_without_dense_and_splits_threads():
    results = make_results(threads=(1, 2))
    results["latency"] = [r for r in results["latency"] if (r["method"], r["format"]) != ("unit", "dense")]
    stems = [stem for stem, _ in figure_names(results) if not stem.startswith(("accuracy", "size", "disk"))]
    assert stems == ["latency-mnist-unit-t1", "latency-mnist-unit-t2", "latency-mnist-weight-t1",
                     "latency-mnist-weight-t2", "speedup-mnist-weight-t1", "speedup-mnist-weight-t2"]
    assert figure_names({}) == []


@pytest.mark.parametrize("stem", ["accuracy-mnist", "latency-mnist-unit", "speedup-mnist-weight",
                                  "size-mnist-weight", "disk-mnist-weight"])
def test_figures_save_as_png(results, stem):
    make = dict(figure_names(results))[stem]
    buffer = io.BytesIO()
    make().savefig(buffer, format="png", dpi=110)
    assert buffer.getvalue().startswith(b"\x89PNG")


def test_unknown_format_gets_the_same_colour_in_every_figure():
    results = make_results(extra_format="bsr_numba")
    latency = line(latency_figure(results, "mnist", "weight").axes[0], "bsr_numba")
    size = line(size_figure(results, "mnist", "weight").axes[0], "bsr_numba")
    assert latency.get_color() == size.get_color()
    assert latency.get_color() not in ("black", "tab:blue", "tab:orange", "tab:green", "tab:red")


@pytest.mark.parametrize("call, match", [
    (lambda r: accuracy_figure(r, "cifar10"), r"unknown dataset 'cifar10'; .*\['fashion_mnist', 'mnist'\]"),
    (lambda r: latency_figure(r, "fashion_mnist", "weight"), r"unknown dataset 'fashion_mnist'; .*\['mnist'\]$"),
    (lambda r: speedup_figure(r, "mnist", "random"), r"unknown method 'random'; .*\['unit', 'weight'\]"),
    (lambda r: size_figure(r, "mnist", "magnitude"), r"unknown method 'magnitude'; .*\['unit', 'weight'\]"),
    (lambda r: latency_figure(r, "mnist", "weight", threads=8), r"unknown threads 8; .*\[2\]"),
    (lambda r: accuracy_figure(r, "mnist", x="k"), "x must be 'achieved_sparsity' or 'sparsity'"),
])
def test_bad_arguments_name_the_valid_choices(results, call, match):
    with pytest.raises(ValueError, match=match):
        call(results)


def test_several_thread_counts_need_a_choice():
    with pytest.raises(ValueError, match=r"threads \[1, 2\]; pass threads="):
        latency_figure(make_results(threads=(1, 2)), "mnist", "weight")


def test_malformed_records_are_rejected(results):
    results["accuracy"][3]["accuracy"] = 97.5
    with pytest.raises(ValueError, match=r"\['accuracy'\]\[3\]\['accuracy'\] is 97.5.*give 0.975"):
        accuracy_figure(results, "mnist")
    del results["latency"][0]["median_s"]
    with pytest.raises(ValueError, match=r"results\['latency'\]\[0\] lacks \['median_s'\]"):
        latency_figure(results, "mnist", "weight")


def test_roofline_figure_and_stem():
    from bench.report.plots import figure_names, roofline_figure

    results = {
        "machine": {"gemm_gflops": 200.0, "cache_gbps": 150.0, "dram_gbps": 40.0},
        "roofline": [
            {"dataset": "mnist", "method": "weight", "sparsity": s, "format": f, "batch": b,
             "efficiency": e}
            for s in (0.0, 0.9) for b in (1, 64) for f, e in (("dense", 0.8), ("sparse", 1.3))
        ],
    }
    fig = roofline_figure(results, "mnist", "weight")
    assert len(fig.axes) == 2
    for ax in fig.axes:
        ys = sorted(float(y) for line in ax.get_lines() for y in line.get_ydata())
        assert ys == [80.0, 80.0, 130.0, 130.0]
        assert ax.get_ylim()[1] >= 130, "an efficiency above 100% is not clipped"
    assert [stem for stem, _ in figure_names(results)] == ["roofline-mnist-weight"]
    with pytest.raises(ValueError, match="no roofline records"):
        roofline_figure(results, "mnist", "unit")


# --- recovery: fine-tuned and gradual records beside the one-shot ones ---------------------------

RECOVERED = (0.8, 0.9, 0.95, 0.98)  # 0.98 is not in the one-shot grid
RECOVERED_FORMATS = {"weight": ("dense", "csr_numba", "csr_numba_par"), "unit": ("dense", "csr_numba", "shrunk")}


def recovered_accuracy(method, stage, sparsity):
    """Fine-tuning recovers most of the loss, gradual a little more; distinct per point."""
    return 0.98 - (0.01 if stage == "finetuned" else 0.005) * sparsity - (0.02 if method == "unit" else 0.0)


def add_recovery(results, stages=("finetuned", "gradual"), timed=True):
    """mnist gains recovered accuracy (scope layer) and, if ``timed``, latency at batch 1 and 64.

    Recovered latency differs from the one-shot latency at the same point, so a figure that
    mixed stages would change.
    """
    for stage in stages:
        for method, fmts in RECOVERED_FORMATS.items():
            for s in RECOVERED:
                results["accuracy"].append({
                    "dataset": "mnist", "method": method, "scope": "layer", "sparsity": s, "achieved_sparsity": s,
                    "accuracy": recovered_accuracy(method, stage, s), "stage": stage, "epochs": 15,
                    "recovery_epochs": 5})
                for fmt in fmts if timed else ():
                    for batch in (1, 64):
                        median = format_seconds(fmt, batch, s) * (1.1 if stage == "gradual" else 0.9)
                        results["latency"].append({
                            "dataset": "mnist", "method": method, "sparsity": s, "format": fmt, "batch": batch,
                            "threads": 2, "median_s": median, "iqr_s": 0.0, "rounds": 50, "stage": stage})
    return results


def test_figure_names_adds_recovery_and_tradeoff_only_where_data_exists(results):
    before = [stem for stem, _ in figure_names(results)]
    assert not any(stem.startswith(("recovery", "tradeoff")) for stem in before)
    for r in results["accuracy"][::2]:
        r["stage"] = "oneshot"  # explicit "oneshot" reads like a missing stage
    assert [stem for stem, _ in figure_names(results)] == before
    add_recovery(results, timed=False)
    assert [stem for stem, _ in figure_names(results)] == before[:2] + ["recovery-mnist"] + before[2:]
    assert [stem for stem, _ in figure_names(add_recovery(make_results()))] == (
        before[:2] + ["recovery-mnist", "tradeoff-mnist"] + before[2:])


def line_data(fig):
    return [[(ln.get_label(), list(ln.get_xdata()), list(ln.get_ydata())) for ln in ax.get_lines()]
            for ax in fig.axes]


def test_recovered_records_leave_every_one_shot_figure_unchanged(results):
    recovered = add_recovery(make_results())
    made = dict(figure_names(recovered))
    for stem, make in figure_names(results):
        assert line_data(made[stem]()) == line_data(make()), stem


def test_recovery_figure_one_line_per_stage_per_method_and_the_dense_line():
    results = add_recovery(make_results())
    fig = recovery_figure(results, "mnist")
    assert [ax.get_title() for ax in fig.axes] == ["weight pruning", "unit pruning"]
    assert legend_labels(fig) == ["dense (98.21%)", "one-shot", "one-shot + fine-tune", "gradual"]
    for ax, method in zip(fig.axes, ("weight", "unit")):
        assert len(ax.get_lines()) == 4
        assert line(ax, "dense (98.21%)").get_linestyle() == "--"
        oneshot = line(ax, "one-shot")  # scope layer only, from 50% to the highest recovered sparsity
        np.testing.assert_array_equal(oneshot.get_xdata(), [0.5, 0.6, 0.7, 0.8, 0.9, 0.95, 0.97])
        for stage, label in (("finetuned", "one-shot + fine-tune"), ("gradual", "gradual")):
            got = line(ax, label)
            np.testing.assert_array_equal(got.get_xdata(), RECOVERED)
            np.testing.assert_allclose(got.get_ydata(), [100 * recovered_accuracy(method, stage, s)
                                                         for s in RECOVERED])
    assert "dense 10 epochs · one-shot + fine-tune 10+5 · gradual 10+5" in fig._suptitle.get_text()
    low, high = fig.axes[0].get_ylim()
    assert all(ax.get_ylim() == (low, high) for ax in fig.axes), "one accuracy scale: methods compare at a glance"
    every = [y for ax in fig.axes for ln in ax.get_lines() for y in ln.get_ydata()]
    assert low <= min(every) and max(every) <= high


def test_recovery_figure_keeps_coinciding_stages_apart_and_ends_at_the_data():
    results = add_recovery(make_results())
    for r in results["accuracy"]:
        if r.get("stage") == "gradual":  # gradual scores exactly as fine-tuning: the reported hidden line
            r["accuracy"] = recovered_accuracy(r["method"], "finetuned", r["sparsity"])
    for ax in recovery_figure(results, "mnist").axes:
        oneshot, finetuned, gradual = (line(ax, lab) for lab in ("one-shot", "one-shot + fine-tune", "gradual"))
        np.testing.assert_array_equal(gradual.get_ydata(), finetuned.get_ydata())
        assert len({oneshot.get_marker(), finetuned.get_marker(), gradual.get_marker()}) == 3
        assert gradual.get_zorder() < finetuned.get_zorder(), "fine-tuned is drawn over gradual"
        assert gradual.get_linewidth() > finetuned.get_linewidth()
        assert gradual.get_markersize() > finetuned.get_markersize()
        assert 0.98 < ax.get_xlim()[1] < 0.99, "the axis ends just past the last recovered sparsity, 98%"


def test_recovery_figure_with_two_scopes_draws_one_shot_per_scope():
    results = add_recovery(make_results(), stages=("finetuned",), timed=False)
    results["accuracy"] += [dict(r, scope="global") for r in results["accuracy"] if r.get("stage") == "finetuned"]
    assert legend_labels(recovery_figure(results, "mnist")) == [
        "dense (98.21%)", "one-shot, layer scope", "one-shot, global scope",
        "one-shot + fine-tune, layer scope", "one-shot + fine-tune, global scope"]


def fastest(method, stage, batch, s):
    return min((format_seconds(f, batch, s) * (1.1 if stage == "gradual" else 0.9), f)
               for f in RECOVERED_FORMATS[method])


def test_tradeoff_points_are_the_fastest_formats_median():
    results = add_recovery(make_results())
    fig = tradeoff_figure(results, "mnist")
    assert [ax.get_title() for ax in fig.axes] == ["batch 1", "batch 64"]
    formats = {fastest(m, st, b, s)[1] for m in RECOVERED_FORMATS for st in ("finetuned", "gradual")
               for b in (1, 64) for s in RECOVERED}
    assert len(formats) > 1, "the fixture must make the fastest format vary"
    assert {f"fastest: {f}" for f in formats} <= set(legend_labels(fig))
    for ax, batch in zip(fig.axes, (1, 64)):
        assert ax.get_xscale() == "log" and ax.get_xlabel().endswith("(µs, log scale)")
        for method in RECOVERED_FORMATS:
            for stage, label in (("finetuned", "one-shot + fine-tune"), ("gradual", "gradual")):
                got = line(ax, f"{method} pruning, {label}")
                np.testing.assert_allclose(got.get_xdata(), [1e6 * fastest(method, stage, batch, s)[0]
                                                             for s in RECOVERED])
                np.testing.assert_allclose(got.get_ydata(), [100 * recovered_accuracy(method, stage, s)
                                                             for s in RECOVERED])
        dense = line(ax, "dense network, dense format")  # one-shot dense format at sparsity 0
        np.testing.assert_allclose(dense.get_xdata(), [1e6 * dense_seconds(batch, 0.0)])
        np.testing.assert_allclose(dense.get_ydata(), [98.21])
        labels = [t.get_text() for t in ax.texts if t.get_gid() != BEST_BOX_GID]
        assert set(labels) <= {"dense", "80%", "90%", "95%", "98%"} and len(labels) <= 17  # one per point at most


def tradeoff_points(results, batch):
    """(seconds, accuracy %, name) per point of a tradeoff panel, computed from the records by hand."""
    points = []
    for m in RECOVERED_FORMATS:
        for st in ("finetuned", "gradual"):
            for s in RECOVERED:
                t = min(r["median_s"] for r in results["latency"] if (r["method"], r.get("stage"), r["sparsity"],
                                                                      r["batch"]) == (m, st, s, batch))
                acc = next(100 * r["accuracy"] for r in results["accuracy"]
                           if (r["method"], r.get("stage"), r["sparsity"]) == (m, st, s))
                points.append((t, acc, f"{100 * s:g}%"))
    return points + [(dense_seconds(batch, 0.0), 98.21, "dense")]


def dominated(p, points):
    return any(q[0] <= p[0] and q[1] >= p[1] and (q[0], q[1]) != (p[0], p[1]) for q in points)


def test_pareto_front_is_exactly_the_non_dominated_points(rng):
    from bench.report.plots.tradeoff import pareto_front

    assert pareto_front([1, 2, 3, 2, 1], [90, 95, 94, 95, 80]) == [0, 1, 3]  # equal points both stay
    assert pareto_front([], []) == []
    for _ in range(20):
        t, a = rng.integers(1, 8, 30).astype(float), rng.integers(80, 90, 30).astype(float)  # many ties
        front = pareto_front(t, a)
        assert set(front) == {i for i in range(30) if not dominated((t[i], a[i]), list(zip(t, a)))}
        assert [t[i] for i in front] == sorted(t[i] for i in front)


def draw(fig):
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    canvas = FigureCanvasAgg(fig)
    canvas.draw()
    return canvas.get_renderer()


def test_tradeoff_marks_the_pareto_front_and_the_fastest_point_near_dense():
    from bench.report.plots.tradeoff import NEAR_DENSE_PT

    results = add_recovery(make_results())
    fig = tradeoff_figure(results, "mnist")
    renderer = draw(fig)
    for ax, batch in zip(fig.axes, (1, 64)):
        points = tradeoff_points(results, batch)
        front = sorted(p for p in points if not dominated(p, points))
        assert 2 < len(front) < len(points), "the fixture must have points on and off the front"
        stairs = line(ax, "Pareto front: fastest for its accuracy")
        assert stairs.get_drawstyle() == "steps-post"
        np.testing.assert_allclose(stairs.get_xdata(), [1e6 * p[0] for p in front])
        np.testing.assert_allclose(stairs.get_ydata(), [p[1] for p in front])
        bold = sorted((t.xy, t.get_text()) for t in ax.texts if t.get_fontweight() == "bold")
        assert [text for _, text in bold] == [p[2] for p in sorted(front, key=lambda p: (1e6 * p[0], p[1]))]
        best = min((p for p in points if p[1] >= 98.21 - NEAR_DENSE_PT), key=lambda p: (p[0], -p[1]))
        ring = line(ax, f"fastest within {NEAR_DENSE_PT:g} pt of dense")
        np.testing.assert_allclose([ring.get_xdata()[0], ring.get_ydata()[0]], [1e6 * best[0], best[1]])
        (box,) = [t for t in ax.texts if t.get_gid() == BEST_BOX_GID]
        assert f"{best[2]} sparse" in box.get_text() and f"{best[1]:.2f}%" in box.get_text()
        assert f"{dense_seconds(batch, 0.0) / best[0]:.3g}× faster than dense" in box.get_text()
        assert_texts_apart(ax, renderer)


def assert_texts_apart(ax, renderer):
    from bench.report.plots.labels import boxes_overlap

    frame = ax.get_window_extent(renderer)
    boxes = [(t.get_text(), t.get_window_extent(renderer)) for t in ax.texts]
    for i, (text, box) in enumerate(boxes):
        assert frame.x0 <= box.x0 and box.x1 <= frame.x1 and frame.y0 <= box.y0 and box.y1 <= frame.y1, text
        for other, box2 in boxes[:i]:
            assert boxes_overlap(box, box2) == 0, f"{text!r} overlaps {other!r}"


def test_tradeoff_labels_do_not_collide_where_points_coincide():
    """The report's "90%80%": here unit pruning's recovered networks time and score exactly as weight
    pruning's, so every label has a twin on the same spot."""
    results = add_recovery(make_results())
    for table in ("accuracy", "latency"):
        weight = [r for r in results[table] if "stage" in r and r["method"] == "weight"]
        results[table] = [r for r in results[table] if "stage" not in r or r["method"] == "weight"]
        results[table] += [dict(r, method="unit") for r in weight]
    fig = tradeoff_figure(results, "mnist")
    renderer = draw(fig)
    for ax in fig.axes:
        bold = [t.get_text() for t in ax.texts if t.get_fontweight() == "bold" and t.get_text() != "dense"]
        assert bold and all(bold.count(text) % 2 == 0 for text in bold), "every front label and its twin are placed"
        assert_texts_apart(ax, renderer)


def test_tradeoff_accuracy_axis_keeps_the_band_near_dense_readable():
    results = add_recovery(make_results())
    outlier = next(r for r in results["accuracy"] if (r["method"], r.get("stage"), r["sparsity"]) ==
                   ("unit", "finetuned", 0.98))
    outlier["accuracy"] = 0.75
    for ax in tradeoff_figure(results, "mnist").axes:
        lo, hi = ax.get_ylim()
        assert lo < 75 and 98.21 < hi < 100
        to_axes = ax.transScale.transform  # the scale's forward function, before limits
        (_, y0), (_, y1) = to_axes([(1, lo), (1, hi)])
        (_, b0), (_, b1) = to_axes([(1, 97), (1, hi)])
        linear = (hi - 97) / (hi - lo)
        assert (b1 - b0) / (y1 - y0) > 3 * linear, "above 97% gets 3x the height a linear axis gives it"
        errors = [100 - v for v in ax.get_yticks() if lo <= v <= hi]
        assert len(errors) >= 4
        assert all(float(f"{e:.3g}") / 10 ** np.floor(np.log10(e) + 1e-9) in (1, 1.2, 1.5, 2, 2.5, 3, 4, 5, 6, 7, 8)
                   for e in errors), errors


def test_recovery_and_tradeoff_without_data_say_so(results):
    with pytest.raises(ValueError, match=r"no fine-tuned or gradual accuracy records for 'mnist'"):
        recovery_figure(results, "mnist")
    with pytest.raises(ValueError, match=r"no fine-tuned or gradual latency records for 'mnist'"):
        tradeoff_figure(add_recovery(results, timed=False), "mnist")
    timed_only = add_recovery(make_results())
    timed_only["accuracy"] = [r for r in timed_only["accuracy"] if "stage" not in r]
    del timed_only["models"]  # no dense accuracy either: a panel without a single point
    fig = tradeoff_figure(timed_only, "mnist")
    assert [t.get_text() for t in fig.axes[0].texts] == ["no accuracy records for the networks timed here"]


def test_unknown_stage_is_named(results):
    results["accuracy"][5]["stage"] = "retrained"
    with pytest.raises(ValueError, match=r"unknown stage 'retrained' in results\['accuracy'\]\[5\]; "
                                         r"expected one of \['oneshot', 'finetuned', 'gradual'\]"):
        figure_names(results)


def test_every_stage_has_a_label_and_a_colour():
    from bench.report.stages import STAGE_COLORS, STAGE_LABELS
    from sparsenet.recover import STAGES

    assert list(STAGE_LABELS) == list(STAGE_COLORS) == list(STAGES)


def test_weight_distributions_keep_the_tails_and_draw_one_panel_per_pruned_layer(rng):
    from bench.report.plots import figure_names, weights_figure
    from bench.report.render import weights_section
    from bench.report.weights import weight_records

    from conftest import random_net

    net = random_net(rng, (40, 30, 20, 10))
    recs = weight_records({"mnist": (net, {})}, "weight", [0.5, 0.9])
    assert {(r["layer"], r["sparsity"]) for r in recs} == {(l, s) for l in (0, 1) for s in (0.0, 0.5, 0.9)}
    for r in recs:
        assert sum(r["counts"]) == r["kept"] and len(r["bin_edges"]) == len(r["counts"]) + 1
        dense = next(d for d in recs if d["layer"] == r["layer"] and d["sparsity"] == 0.0)
        assert r["bin_edges"] == dense["bin_edges"], "one set of bins per layer"
        if r["sparsity"] > 0:  # magnitude pruning empties the middle bins first
            middle = len(r["counts"]) // 2
            assert r["counts"][middle] == 0 < dense["counts"][middle] and r["std"] > dense["std"]
    fig = weights_figure({"weights": recs}, "mnist")
    assert len(fig.axes) == 2
    assert ("weights-mnist" in [stem for stem, _ in figure_names({"weights": recs})])
    assert "kept at 0.90" in weights_section({"weights": recs}, [])
    with pytest.raises(ValueError, match="no weight-distribution records for 'cifar'"):
        weights_figure({"weights": recs}, "cifar")
