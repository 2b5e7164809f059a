"""The trained networks and evaluation images the benchmarks and the report run on."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from sparsenet import Network, convert, load_network, prune
from sparsenet.data import load_dataset


def parse_weights(text: str | None) -> dict[str, Path]:
    """'mnist=a.npz,fashion_mnist=b.npz' -> {dataset: path}; the user's own trained networks."""
    out = {}
    for item in (text or "").split(","):
        if not item.strip():
            continue
        dataset, sep, path = item.partition("=")
        if not sep or not path:
            raise ValueError(f"--weights expects DATASET=PATH.npz items separated by commas, found {item!r}")
        out[dataset.strip()] = Path(path.strip()).expanduser()
    return out


def user_model(dataset: str, path: Path, data_dir=None) -> tuple[Network, dict]:
    """A network the user trained elsewhere (sparsenet .npz), with its dense accuracy measured here."""
    net = load_network(path)
    data = load_dataset(dataset, data_dir=data_dir)
    if net.widths[0] != data.x_test.shape[1] or net.widths[-1] != 10:
        raise ValueError(f"{path}: network maps {net.widths[0]} inputs to {net.widths[-1]} outputs; "
                         f"{dataset} needs {data.x_test.shape[1]} inputs and 10 classes")
    forward = convert(prune(net, "weight", 0.0), "dense")
    accuracy = float((forward(data.x_test.astype(net.dtype)).argmax(axis=1) == data.y_test).mean())
    print(f"using your {dataset} network from {path} (test accuracy {accuracy:.2%})", flush=True)
    return net, {"dataset": dataset, "architecture": list(net.widths), "epochs": None,
                 "test_accuracy_numpy": accuracy, "source": str(path)}


def load_models(datasets, epochs: int | None, data_dir=None, cache_dir=None,
                weights: dict[str, Path] | None = None) -> dict[str, tuple[Network, dict]]:
    """``{dataset: (network, manifest)}``: the user's ``weights`` where given, otherwise trained
    with TensorFlow on first use and cached."""
    weights = weights or {}
    out = {}
    for name in datasets:
        if name in weights:
            out[name] = user_model(name, weights[name], data_dir)
            continue
        from sparsenet.train import DEFAULT_EPOCHS, TrainConfig, trained_network  # tensorflow stays lazy

        config = TrainConfig(dataset=name, epochs=epochs or DEFAULT_EPOCHS[name])
        out[name] = trained_network(config, cache_dir=cache_dir, data_dir=data_dir, progress=True)
    return out


def load_eval_data(datasets, data_dir=None) -> dict[str, np.ndarray]:
    """Test images (float32, (10000, 784)) per dataset: the inputs every latency is measured on."""
    return {name: load_dataset(name, data_dir=data_dir).x_test for name in datasets}
