"""The trained networks and evaluation data the benchmarks and the report run on.

Either ours (trained with TensorFlow on first use and cached, per built-in dataset; or the
user's ``--weights DATASET=PATH.npz`` for a built-in dataset), or the user's own model alone
(``--model PATH --data TEST`` [``--train-data TRAIN``]): :func:`load_study` returns both as
``{name: (network, manifest)}`` and ``{name: dataset}``, so everything after it is the same.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

from bench.grid import GRIDS, Grid, conv_config, data_label, is_conv
from sparsenet import Network, convert, load_network, prune
from sparsenet.data import DATASETS, load_dataset
from sparsenet.formats import baseline
from sparsenet.userdata import user_dataset


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
    accuracy = dense_accuracy(net, data)
    print(f"using your {dataset} network from {path} (test accuracy {accuracy:.2%})", flush=True)
    return net, {"dataset": dataset, "architecture": list(net.widths), "epochs": None,
                 "test_accuracy_numpy": accuracy, "source": str(path)}


def dense_accuracy(net: Network, data) -> float:
    forward = convert(prune(net, "weight", 0.0, prune_logits=True), baseline())  # nothing pruned; any depth
    return float((forward(data.x_test.astype(net.dtype)).argmax(axis=1) == data.y_test).mean())


def read_model(path: Path) -> tuple[Network, dict]:
    """A user's model file: a sparsenet .npz, or (with the import extras) Keras or ONNX."""
    if path.suffix == ".npz":
        return load_network(path), {"framework": "sparsenet", "input_shape": None}
    try:
        from sparsenet import load_model
    except ImportError:
        raise ValueError(f"{path}: this sparsenet reads sparsenet .npz networks only; Keras and ONNX models "
                         "need sparsenet.load_model (the model-import extra)") from None
    imported = load_model(path)
    net = getattr(imported, "network", imported)
    return net, {"framework": getattr(imported, "framework", path.suffix.lstrip(".")),
                 "input_shape": list(getattr(imported, "input_shape", None) or []) or None}


def own_model(model: str, data: str, train_data: str | None, data_dir=None) -> tuple[dict, dict]:
    """``--model``: the user's network alone, evaluated on ``data`` (an .npz or a built-in dataset)."""
    path = Path(model).expanduser()
    if not path.is_file():
        raise ValueError(f"--model: no file at {path}")
    net, info = read_model(path)
    name = data_label(data)
    if data in DATASETS:
        if train_data is not None:
            raise ValueError(f"--train-data goes with an .npz --data; {data} brings its own training split")
        dataset = load_dataset(data, data_dir=data_dir)
        if dataset.x_test.shape[1] != net.widths[0]:
            raise ValueError(f"{path}: network takes {net.widths[0]} inputs, {data} has {dataset.x_test.shape[1]}")
    else:
        dataset = user_dataset(data, train_data, n_in=net.widths[0], n_classes=net.widths[-1])
    accuracy = dense_accuracy(net, dataset)
    classes = int(net.widths[-1])
    print(f"using your model {path}: {'-'.join(map(str, net.widths))}, activations "
          f"{', '.join(layer.activation for layer in net.layers)}; test accuracy {accuracy:.2%} on "
          f"{dataset.x_test.shape[0]} samples of {name}", flush=True)
    manifest = {"dataset": name, "architecture": list(net.widths), "epochs": None, "test_accuracy_numpy": accuracy,
                "source": str(path), "data_source": dataset.source, "classes": classes,
                "activations": [layer.activation for layer in net.layers], "test_samples": int(dataset.x_test.shape[0]),
                **info}
    return {name: (net, manifest)}, {name: dataset}


def load_study(datasets, epochs: int | None, data_dir=None, cache_dir=None, weights=None, model=None, data=None,
               train_data=None, grid: Grid | None = None) -> tuple[dict, dict]:
    """``({name: (network, manifest)}, {name: dataset})`` for a run: the user's ``model`` alone,
    or one network per built-in dataset (``weights`` where given, else ours). Image datasets get
    the conv section's MobileNetV2 (``grid``'s conv budget), and only the first
    ``grid.conv_test_samples`` of their test images (the accuracy sweep runs the network often)."""
    if model is not None:
        return own_model(model, data, train_data, data_dir)
    # the data first: a missing or corrupt file is reported before any training, or any wait for
    # another run that is training the same network
    data = {name: _test_subset(load_dataset(name, data_dir=data_dir), grid, name) for name in datasets}
    return load_models(datasets, epochs, data_dir, cache_dir, weights, grid), data


def _test_subset(data, grid: Grid | None, name: str):
    n = (grid or GRIDS["full"]).conv_test_samples
    if not is_conv(name) or n is None or n >= len(data.y_test):
        return data
    return dataclasses.replace(data, x_test=data.x_test[:n], y_test=data.y_test[:n],
                               source=f"{data.source}; accuracy on the first {n} test images")


def load_models(datasets, epochs: int | None, data_dir=None, cache_dir=None,
                weights: dict[str, Path] | None = None, grid: Grid | None = None) -> dict[str, tuple[Network, dict]]:
    """``{dataset: (network, manifest)}``: the user's ``weights`` where given, otherwise trained
    with TensorFlow on first use and cached (an image dataset: MobileNetV2, :func:`bench.grid.conv_config`)."""
    weights = weights or {}
    out = {}
    for name in datasets:
        if name in weights:
            out[name] = user_model(name, weights[name], data_dir)
            continue
        if is_conv(name):
            out[name] = conv_model(conv_config(grid or GRIDS["full"], name), cache_dir, data_dir)
            continue
        from sparsenet.train import DEFAULT_EPOCHS, TrainConfig, trained_network  # tensorflow stays lazy

        config = TrainConfig(dataset=name, epochs=epochs or DEFAULT_EPOCHS[name])
        out[name] = trained_network(config, cache_dir=cache_dir, data_dir=data_dir, progress=True)
    return out



def conv_model(config, cache_dir=None, data_dir=None) -> tuple[Network, dict]:
    """The MobileNetV2 for ``config`` (sparsenet.train_conv: trained once, then cached) and a
    manifest in the shape the report reads (``architecture``: the widths between layers)."""
    from sparsenet.train_conv import trained_conv_network  # tensorflow only when training

    net, manifest = trained_conv_network(config, cache_dir=cache_dir, data_dir=data_dir, progress=True)
    return net, {**manifest, "architecture": [int(w) for w in net.widths],
                 "network": f"MobileNetV2 (keras.applications), width {config.alpha:g}, BN folded",
                 "layer_kinds": sorted(net.layer_kinds)}
