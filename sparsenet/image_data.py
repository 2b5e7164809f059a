"""Image datasets for convolutional networks: CIFAR-10 and the offline stand-in Fashion-MNIST 32x32.

:func:`load_image_dataset` is the one entry point (``sparsenet.data.load_dataset`` forwards these
names here). Images are float32 in [0, 1], NHWC and flattened per sample in C order,
``(n, height * width * channels)``: what every format takes (:mod:`sparsenet.layers._spatial`),
with the per-sample shape in :attr:`ImageDataset.image_shape`.

``fashion_mnist_32``
    Fashion-MNIST (read by :mod:`sparsenet.data`, the same places) with 2 zero pixels added on
    every side, 28x28 -> 32x32, 1 channel, or 3 identical ones (``channels=3``): the dataset this
    toolkit can always train a MobileNetV2 on offline. It is not CIFAR-10; reports must name it.
``cifar10``
    The CIFAR-10 Python archive (:mod:`sparsenet.cifar10`), 32x32x3.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np

from .validation import check_choice

IMAGE_DATASETS = ("cifar10", "fashion_mnist_32")
PAD = 2  # 28 + 2 * 2 = 32


@dataclass(frozen=True)
class ImageDataset:
    """A train/test split of images; ``x_*`` float32 ``(n, H * W * C)`` NHWC-flattened in [0, 1],
    ``y_*`` int64 class ids in 0..9, arrays read-only; ``source`` names where they were read."""

    name: str
    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    source: str
    image_shape: tuple[int, int, int]

    def __post_init__(self) -> None:
        size = int(np.prod(self.image_shape))
        for split in ("train", "test"):
            x, y = getattr(self, f"x_{split}"), getattr(self, f"y_{split}")
            if x.dtype != np.float32 or x.ndim != 2 or x.shape[1] != size:
                raise ValueError(f"x_{split} must be float32 (n, {size}) for images {self.image_shape}, "
                                 f"found {x.dtype} {x.shape}")
            if y.dtype != np.int64 or y.shape != (x.shape[0],):
                raise ValueError(f"y_{split} must be int64 ({x.shape[0]},) to match x_{split}, "
                                 f"found {y.dtype} {y.shape}")

    def __repr__(self) -> str:
        return (f"ImageDataset({self.name!r}, {'x'.join(map(str, self.image_shape))}, train={self.x_train.shape[0]}, "
                f"test={self.x_test.shape[0]}, source={self.source!r})")


def load_image_dataset(name: str, data_dir: str | os.PathLike | None = None, download: bool = True,
                       channels: int | None = None) -> ImageDataset:
    """Load ``name`` (one of :data:`IMAGE_DATASETS`); ``channels`` is 1 or 3 for ``fashion_mnist_32``
    (default 1) and 3 (or None) for ``cifar10``. Places searched and errors: :func:`sparsenet.data.load_dataset`
    for Fashion-MNIST, :func:`sparsenet.cifar10.load_cifar10` for CIFAR-10."""
    check_choice("image dataset", name, IMAGE_DATASETS)
    if name == "cifar10":
        if channels not in (None, 3):
            raise ValueError(f"cifar10 has 3 channels, found channels={channels!r}")
        from .cifar10 import load_cifar10

        return load_cifar10(data_dir, download)
    channels = 1 if channels is None else channels
    if channels not in (1, 3):
        raise ValueError(f"fashion_mnist_32 has 1 channel or 3 identical ones, found channels={channels!r}")
    from .data import load_dataset

    base = load_dataset("fashion_mnist", data_dir, download)
    arrays = [pad_to_32(x, channels) for x in (base.x_train, base.x_test)]
    return ImageDataset("fashion_mnist_32", arrays[0], base.y_train, arrays[1], base.y_test,
                        f"{base.source} (padded to 32x32, {channels} channel{'s' if channels > 1 else ''})",
                        (32, 32, channels))


def pad_to_32(x: np.ndarray, channels: int = 1) -> np.ndarray:
    """Flat 28x28 images ``(n, 784)`` -> flat ``(n, 32 * 32 * channels)``, zero borders, read-only."""
    side = 28 + 2 * PAD
    out = np.zeros((x.shape[0], side, side, channels), np.float32)
    out[:, PAD:PAD + 28, PAD:PAD + 28, :] = x.reshape(-1, 28, 28, 1)
    out = out.reshape(x.shape[0], -1)
    out.setflags(write=False)
    return out
