"""The trained networks and evaluation images the benchmarks and the report run on."""

from __future__ import annotations

import numpy as np

from sparsenet import Network
from sparsenet.data import load_dataset


def load_models(datasets, epochs: int | None, data_dir=None, cache_dir=None) -> dict[str, tuple[Network, dict]]:
    """``{dataset: (network, manifest)}``, trained with TensorFlow on first use, then cached."""
    from sparsenet.train import DEFAULT_EPOCHS, TrainConfig, trained_network  # tensorflow stays lazy

    out = {}
    for name in datasets:
        config = TrainConfig(dataset=name, epochs=epochs or DEFAULT_EPOCHS[name])
        out[name] = trained_network(config, cache_dir=cache_dir, data_dir=data_dir, progress=True)
    return out


def load_eval_data(datasets, data_dir=None) -> dict[str, np.ndarray]:
    """Test images (float32, (10000, 784)) per dataset: the inputs every latency is measured on."""
    return {name: load_dataset(name, data_dir=data_dir).x_test for name in datasets}
