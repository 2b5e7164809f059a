"""Test accuracy of pruned networks per (dataset, method, scope, sparsity); no timing here."""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np

from sparsenet import convert, prune
from sparsenet.formats import baseline
from sparsenet.recover import RecoveryConfig, recovered_network
from sparsenet.userdata import LabelledData


def accuracy(forward, x: np.ndarray, y: np.ndarray, chunk: int = 2000) -> float:
    """Fraction of ``x`` whose argmax logit equals the label ``y``."""
    hits = sum(int((forward(x[i:i + chunk]).argmax(axis=1) == y[i:i + chunk]).sum())
               for i in range(0, len(x), chunk))
    return hits / len(x)


INT8_FORMAT = "dense_int8"
STATIC_FORMAT = "sparse_int8_static"  # static int8 activations: its accuracy with real calibration
TFLITE_INT8 = "tflite_int8"  # the int8 path users know: its accuracy too, calibrated on training samples


def tflite_int8_runs(net, formats) -> bool:
    """Whether ``formats`` (the run's) has TFLite int8 and it can run ``net`` (installed, layer kinds)."""
    from sparsenet import FORMATS
    from sparsenet.formats import available

    cls = FORMATS.get(TFLITE_INT8)
    return TFLITE_INT8 in formats and cls is not None and available(cls) and net.layer_kinds <= cls.layer_kinds


def tflite_int8_accuracy(masked, x_train: np.ndarray, x_test: np.ndarray, y_test: np.ndarray) -> float | None:
    """Test accuracy of the TFLite full-integer conversion of ``masked``, its representative
    dataset the first CALIBRATION_SAMPLES training images; None where it cannot convert this network."""
    from sparsenet.formats.engines.tflite_int8 import CALIBRATION_SAMPLES, TFLiteInt8Forward

    calibration = np.ascontiguousarray(x_train[:CALIBRATION_SAMPLES].reshape(-1, masked.net.widths[0]),
                                       dtype=np.float32)
    try:
        forward = TFLiteInt8Forward.build(masked, calibration)
    except NotImplementedError:
        return None
    return accuracy(forward, x_test.astype(np.float32, copy=False), y_test)


def int8_static_accuracy(masked, x_train: np.ndarray, x_test: np.ndarray, y_test: np.ndarray) -> float:
    """Test accuracy of ``sparse_int8_static`` (static int8 activations) calibrated on the first
    CALIBRATION_SAMPLES training images, run by that format's own kernel."""
    from sparsenet.formats.sparse_int8_static import CALIBRATION_SAMPLES, SparseInt8StaticForward

    calibration = np.ascontiguousarray(x_train[:CALIBRATION_SAMPLES].reshape(-1, masked.net.widths[0]),
                                       dtype=np.float32)
    forward = SparseInt8StaticForward.build(masked, calibration)
    return accuracy(forward, np.ascontiguousarray(x_test, dtype=np.float32), y_test)


def int8_runs(net) -> bool:
    """Whether the int8 formats can run ``net`` (registered, its layer kinds and activations)."""
    from sparsenet import FORMATS

    cls = FORMATS.get(INT8_FORMAT)
    return cls is not None and net.layer_kinds <= cls.layer_kinds and \
        {layer.activation for layer in net.layers} <= cls.activations


def accuracy_records(models: dict, data: dict, methods: Iterable[str], scopes: Iterable[str],
                     sparsities: Iterable[float], progress=print, formats: Iterable[str] = ()) -> list[dict]:
    """One record per one-shot setting, measured with the ``dense`` format (formats agree;
    tests prove it), and ``int8_accuracy``, the same network with int8 weights (one scale per
    unit, float activations: what the int8 formats run; measured with ``dense_int8``, which tests
    check against the dequantized network). ``epochs`` is the dense training budget (None: a
    network of the user's). Where ``formats`` has ``sparse_int8_static``, ``int8_static_accuracy``
    is that format's, calibrated on training samples. Where ``formats`` has ``tflite_int8``, per-layer settings also get
    ``tflite_int8_accuracy`` (a TFLite conversion per network: seconds each, cached)."""
    records = []
    formats = tuple(formats)
    for dataset, (net, manifest) in models.items():
        x_test, y_test = data[dataset].x_test.astype(net.dtype, copy=False), data[dataset].y_test
        tflite = tflite_int8_runs(net, formats)
        for method in methods:
            for scope in scopes:
                row = []
                for sparsity in sparsities:
                    masked = prune(net, method, sparsity, scope)
                    acc = accuracy(convert(masked, baseline()), x_test, y_test)
                    int8 = accuracy(convert(masked, INT8_FORMAT), x_test, y_test) if int8_runs(net) else None
                    static = (int8_static_accuracy(masked, data[dataset].x_train, x_test, y_test)
                              if int8 is not None and STATIC_FORMAT in formats and net.dtype == np.float32 else None)
                    lite = (tflite_int8_accuracy(masked, data[dataset].x_train, x_test, y_test)
                            if tflite and scope == "layer" else None)
                    records.append({
                        "dataset": dataset, "method": method, "scope": scope, "sparsity": sparsity,
                        "achieved_sparsity": round(masked.achieved_sparsity(), 6),
                        "layer_sparsity": [round(s, 6) for s in masked.layer_sparsity()],
                        "accuracy": acc, "stage": "oneshot", "epochs": manifest.get("epochs"),
                        "recovery_epochs": 0, **({} if int8 is None else {"int8_accuracy": int8}),
                        **({} if static is None else {"int8_static_accuracy": static}),
                        **({} if lite is None else {"tflite_int8_accuracy": lite}),
                    })
                    row.append(f"{sparsity:.2f}:{100 * acc:.1f}%" + "".join(
                        f"/{100 * a:.1f}%" for a in (int8, static, lite) if a is not None))
                progress(f"  accuracy {dataset} {method}/{scope}: " + " ".join(row))
    return records


def recovery_records(models: dict, data: dict, methods: Iterable[str], stages: Iterable[str],
                     sparsities: Iterable[float], scope: str, config: RecoveryConfig, data_dir=None, cache_dir=None,
                     progress=print) -> list[dict]:
    """Accuracy of the fine-tuned and gradually pruned networks (trained on first use, then cached)."""
    records = []
    for dataset, (net, manifest) in models.items():
        own = data[dataset] if isinstance(data[dataset], LabelledData) else dataset  # a user's data travels as is
        x_test, y_test = data[dataset].x_test.astype(net.dtype, copy=False), data[dataset].y_test
        dense_epochs = manifest.get("epochs")
        for method in methods:
            for stage in stages:
                row = []
                for sparsity in sparsities:
                    masked, info = recovered_network(net, stage, method, sparsity, scope, own, config,
                                                     cache_dir=cache_dir, data_dir=data_dir,
                                                     keras_model=manifest.get("keras_model"))
                    acc = accuracy(convert(masked, baseline()), x_test, y_test)
                    records.append({
                        "dataset": dataset, "method": method, "scope": scope, "sparsity": sparsity,
                        "achieved_sparsity": round(masked.achieved_sparsity(), 6),
                        "layer_sparsity": [round(s, 6) for s in masked.layer_sparsity()],
                        "accuracy": acc, "stage": stage,
                        "epochs": None if dense_epochs is None else dense_epochs + config.epochs,
                        "recovery_epochs": config.epochs, "train_seconds": info["train_seconds"],
                    })
                    row.append(f"{sparsity:.2f}:{100 * acc:.1f}%")
                progress(f"  accuracy {dataset} {method}/{scope} {stage}: " + " ".join(row))
    return records
