"""sparsenet.data on the real files: shapes and contents, the search order, and clear errors."""

from __future__ import annotations

import gzip
import os
from pathlib import Path

import numpy as np
import pytest

from sparsenet import data
from sparsenet.data import IDX_FILES, Dataset, DatasetNotFoundError, load_dataset

# Published class counts: Fashion-MNIST is balanced, MNIST is not.
MNIST_TEST_COUNTS = [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]
MNIST_TRAIN_COUNTS = [5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949]


@pytest.fixture
def isolated(monkeypatch, tmp_path) -> Path:
    """No data anywhere: empty HOME and KERAS_HOME, no SPARSENET_DATA_DIR, standard places absent."""
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("KERAS_HOME", str(home / "keras"))
    monkeypatch.delenv("SPARSENET_DATA_DIR", raising=False)
    monkeypatch.setattr(data, "STANDARD_DIRS", {"fashion_mnist": (tmp_path / "std" / "fashion",),
                                                "mnist": (tmp_path / "std" / "mnist",)})
    return tmp_path


@pytest.fixture(scope="module")
def real_dirs() -> dict[str, Path]:
    """Where the real IDX files were found, before any test hides the standard places."""
    return {name: Path(load_dataset(name, download=False).source) for name in data.DATASETS}


def idx_dir(real_dirs: dict[str, Path], name: str) -> Path:
    if not real_dirs[name].is_dir():
        pytest.skip(f"{name} was found as {real_dirs[name]}, not as a directory of IDX files")
    return real_dirs[name]


def linked_copy(src: Path, dest: Path) -> Path:
    """``dest`` holding symlinks to the files in ``src`` (a cache hit: links resolve to the same files)."""
    dest.mkdir(parents=True)
    for fname in IDX_FILES.values():
        (dest / fname).symlink_to(src / fname)
    return dest


def replace_file(directory: Path, fname: str, content: bytes) -> Path:
    path = directory / fname
    path.unlink()
    path.write_bytes(content)
    return path


@pytest.mark.parametrize("name", data.DATASETS)
def test_load_real_dataset_shapes_dtypes_ranges(name):
    ds = load_dataset(name, download=False)
    assert ds.name == name
    assert ds.x_train.shape == (60000, 784) and ds.x_test.shape == (10000, 784)
    assert ds.x_train.dtype == ds.x_test.dtype == np.float32
    assert ds.y_train.shape == (60000,) and ds.y_test.shape == (10000,)
    assert ds.y_train.dtype == ds.y_test.dtype == np.int64
    for x in (ds.x_train, ds.x_test):
        assert x.min() == 0.0 and x.max() == 1.0
    train_counts, test_counts = np.bincount(ds.y_train).tolist(), np.bincount(ds.y_test).tolist()
    if name == "mnist":
        assert train_counts == MNIST_TRAIN_COUNTS and test_counts == MNIST_TEST_COUNTS
    else:
        assert train_counts == [6000] * 10 and test_counts == [1000] * 10
    assert Path(ds.source).exists()


def test_load_is_cached_and_read_only():
    first, second = load_dataset("mnist", download=False), load_dataset("mnist", download=False)
    assert first.x_train is second.x_train
    with pytest.raises(ValueError, match="read-only"):
        first.x_train[0, 0] = 1.0
    with pytest.raises(ValueError, match="read-only"):
        first.y_test[0] = 3


def test_unknown_dataset_lists_choices():
    with pytest.raises(ValueError, match=r"unknown dataset 'svhn'.*cifar10.*fashion_mnist.*fashion_mnist_32.*mnist"):
        load_dataset("svhn")


def test_sparsenet_data_dir_env_is_honoured_with_subdir(real_dirs, isolated, monkeypatch):
    root = isolated / "mydata"
    linked_copy(idx_dir(real_dirs, "fashion_mnist"), root / "fashion-mnist")
    monkeypatch.setenv("SPARSENET_DATA_DIR", str(root))
    ds = load_dataset("fashion_mnist", download=False)
    assert ds.source == str(root / "fashion-mnist")
    assert ds.x_train.shape == (60000, 784)


def test_data_dir_argument_comes_before_env(real_dirs, isolated, monkeypatch):
    linked_copy(idx_dir(real_dirs, "mnist"), isolated / "env")
    linked_copy(idx_dir(real_dirs, "mnist"), isolated / "arg")
    monkeypatch.setenv("SPARSENET_DATA_DIR", str(isolated / "env"))
    assert load_dataset("mnist", data_dir=isolated / "arg", download=False).source == str(isolated / "arg")


def test_nothing_found_lists_every_place_and_remedies(isolated, monkeypatch):
    (isolated / "env").mkdir()
    monkeypatch.setenv("SPARSENET_DATA_DIR", str(isolated / "env"))
    with pytest.raises(DatasetNotFoundError) as info:
        load_dataset("fashion_mnist", download=False)
    assert isinstance(info.value, FileNotFoundError)
    message = str(info.value)
    keras_cache = isolated / "home" / "keras" / "datasets" / "fashion-mnist"
    for place in (isolated / "env", isolated / "env" / "fashion-mnist", isolated / "env" / "fashion_mnist",
                  isolated / "std" / "fashion", keras_cache):
        assert f"{place} (" in message, place
    assert "holds none of the 4" in message  # env exists but is empty
    assert "download=False" in message
    assert "apt-get install dataset-fashion-mnist" in message and "SPARSENET_DATA_DIR" in message


@pytest.mark.parametrize("make", [False, True])
def test_a_named_data_dir_must_hold_the_data(real_dirs, isolated, monkeypatch, make):
    """Missing or empty, the directory the caller named is an error, even when the data is elsewhere."""
    linked_copy(idx_dir(real_dirs, "mnist"), isolated / "env")
    monkeypatch.setenv("SPARSENET_DATA_DIR", str(isolated / "env"))
    named = isolated / "typo"
    if make:
        named.mkdir()
    with pytest.raises(DatasetNotFoundError, match=rf"MNIST not found in the data_dir given \({named}\)"):
        load_dataset("mnist", data_dir=named, download=False)


def test_bytes_after_the_gzip_stream_are_refused_for_every_dataset(real_dirs, isolated):
    from sparsenet.errors import FileFormatError

    for name in data.DATASETS:
        d = linked_copy(idx_dir(real_dirs, name), isolated / name)
        blob = (idx_dir(real_dirs, name) / "t10k-labels-idx1-ubyte.gz").read_bytes()
        replace_file(d, "t10k-labels-idx1-ubyte.gz", blob + b"extra")
        with pytest.raises(FileFormatError, match=r"has 5 bytes after the end of its gzip stream"):
            load_dataset(name, data_dir=d, download=False)


def test_gzip_bomb_is_stopped_at_the_declared_size(real_dirs, isolated):
    """A valid header followed by 400 MB of zeros: refused after inflating ~header size, fast and small."""
    import time
    import tracemalloc
    import zlib

    from sparsenet.errors import FileFormatError

    d = linked_copy(idx_dir(real_dirs, "mnist"), isolated / "d")
    head = (2049).to_bytes(4, "big") + (10000).to_bytes(4, "big")
    comp = zlib.compressobj(9, zlib.DEFLATED, 16 + zlib.MAX_WBITS)
    chunk = bytes(1 << 22)
    bomb = comp.compress(head) + b"".join(comp.compress(chunk) for _ in range(100)) + comp.flush()
    replace_file(d, "t10k-labels-idx1-ubyte.gz", bomb)
    tracemalloc.start()
    start = time.perf_counter()
    try:
        with pytest.raises(FileFormatError, match="has bytes after the 10000 its header announces"):
            load_dataset("mnist", data_dir=d, download=False)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert time.perf_counter() - start < 10
    assert peak < 200 << 20, peak  # the train files are read (47 MB decoded); never the 400 MB


def test_incomplete_directory_names_missing_files(real_dirs, isolated):
    partial = linked_copy(idx_dir(real_dirs, "mnist"), isolated / "partial")
    (partial / "t10k-labels-idx1-ubyte.gz").unlink()
    with pytest.raises(DatasetNotFoundError, match=r"partial \(data_dir argument\): incomplete, "
                                                   r"missing t10k-labels-idx1-ubyte.gz"):
        load_dataset("mnist", data_dir=partial, download=False)


def test_truncated_gz_is_a_value_error_naming_the_file(real_dirs, isolated):
    d = linked_copy(idx_dir(real_dirs, "mnist"), isolated / "d")
    blob = (idx_dir(real_dirs, "mnist") / "train-images-idx3-ubyte.gz").read_bytes()
    bad = replace_file(d, "train-images-idx3-ubyte.gz", blob[: len(blob) // 3])
    with pytest.raises(ValueError, match=rf"{bad} is truncated: header says 60000x28x28 = 47040000 bytes, "
                                         rf"found \d+; replace it"):
        load_dataset("mnist", data_dir=d, download=False)


def test_gz_missing_only_its_trailer_is_truncated(real_dirs, isolated):
    d = linked_copy(idx_dir(real_dirs, "fashion_mnist"), isolated / "d")
    blob = (idx_dir(real_dirs, "fashion_mnist") / "t10k-labels-idx1-ubyte.gz").read_bytes()
    bad = replace_file(d, "t10k-labels-idx1-ubyte.gz", blob[:-8])  # drop CRC32 + size
    with pytest.raises(ValueError, match=rf"{bad} is truncated: .*gzip stream ends early"):
        load_dataset("fashion_mnist", data_dir=d, download=False)


def test_wrong_magic_number_is_an_error(real_dirs, isolated):
    d = linked_copy(idx_dir(real_dirs, "fashion_mnist"), isolated / "d")
    raw = bytearray(gzip.decompress((idx_dir(real_dirs, "fashion_mnist") / "train-labels-idx1-ubyte.gz").read_bytes()))
    raw[:4] = (2051).to_bytes(4, "big")  # an images header in a labels file
    bad = replace_file(d, "train-labels-idx1-ubyte.gz", gzip.compress(bytes(raw)))
    with pytest.raises(ValueError, match=rf"{bad} has IDX magic number 2051, expected 2049"):
        load_dataset("fashion_mnist", data_dir=d, download=False)


def test_label_out_of_range_is_an_error(real_dirs, isolated):
    d = linked_copy(idx_dir(real_dirs, "fashion_mnist"), isolated / "d")
    raw = bytearray(gzip.decompress((idx_dir(real_dirs, "fashion_mnist") / "t10k-labels-idx1-ubyte.gz").read_bytes()))
    raw[100] = 10
    bad = replace_file(d, "t10k-labels-idx1-ubyte.gz", gzip.compress(bytes(raw)))
    with pytest.raises(ValueError, match=rf"{bad} holds label 10, expected class ids 0..9"):
        load_dataset("fashion_mnist", data_dir=d, download=False)


def test_garbage_file_is_not_gzip(real_dirs, isolated):
    d = linked_copy(idx_dir(real_dirs, "mnist"), isolated / "d")
    bad = replace_file(d, "t10k-images-idx3-ubyte.gz", b"<html>404 Not Found</html>")
    with pytest.raises(ValueError, match=rf"{bad} is not a gzip file"):
        load_dataset("mnist", data_dir=d, download=False)


def test_corrupt_deflate_stream_is_an_error(real_dirs, isolated):
    d = linked_copy(idx_dir(real_dirs, "mnist"), isolated / "d")
    blob = bytearray((idx_dir(real_dirs, "mnist") / "train-labels-idx1-ubyte.gz").read_bytes())
    blob[1000:1100] = bytes(100)
    bad = replace_file(d, "train-labels-idx1-ubyte.gz", bytes(blob))
    with pytest.raises(ValueError, match=rf"{bad} (is corrupt|is truncated|has IDX|holds)"):
        load_dataset("mnist", data_dir=d, download=False)


def test_mnist_md5_mismatch_is_an_error(real_dirs, isolated):
    # Same content, gzip-compressed again: structurally valid, but not the published file.
    d = linked_copy(idx_dir(real_dirs, "mnist"), isolated / "d")
    raw = gzip.decompress((idx_dir(real_dirs, "mnist") / "t10k-labels-idx1-ubyte.gz").read_bytes())
    bad = replace_file(d, "t10k-labels-idx1-ubyte.gz", gzip.compress(raw, compresslevel=1, mtime=0))
    with pytest.raises(ValueError, match=rf"{bad} has md5 [0-9a-f]{{32}}, expected ec29112dd5afa0611ce80d1b7f02629c"):
        load_dataset("mnist", data_dir=d, download=False)


def keras_npz(path: Path, ds: Dataset, **replace) -> None:
    """Write Keras' mnist.npz layout (uint8 images 28x28, uint8 labels) from a decoded dataset."""
    arrays = {
        "x_train": np.rint(ds.x_train * 255).astype(np.uint8).reshape(-1, 28, 28),
        "y_train": ds.y_train.astype(np.uint8),
        "x_test": np.rint(ds.x_test * 255).astype(np.uint8).reshape(-1, 28, 28),
        "y_test": ds.y_test.astype(np.uint8),
    }
    arrays.update(replace)
    path.parent.mkdir(parents=True, exist_ok=True)
    np.savez(path, **arrays)


@pytest.fixture(scope="module")
def real_mnist() -> Dataset:
    return load_dataset("mnist", download=False)


def test_keras_mnist_npz_in_keras_cache_is_read(real_mnist, isolated):
    real = real_mnist
    npz = isolated / "home" / "keras" / "datasets" / "mnist.npz"
    keras_npz(npz, real)
    ds = load_dataset("mnist", download=False)
    assert ds.source == str(npz)
    for field in IDX_FILES:
        np.testing.assert_array_equal(getattr(ds, field), getattr(real, field))
        assert getattr(ds, field).dtype == getattr(real, field).dtype


def test_mnist_npz_with_other_content_is_rejected(real_mnist, isolated):
    real = real_mnist
    y_train = real.y_train.astype(np.uint8)  # a fresh, writable copy
    y_train[0] = (y_train[0] + 1) % 10
    npz = isolated / "mydata" / "mnist.npz"
    keras_npz(npz, real, y_train=y_train)
    with pytest.raises(ValueError, match=rf"{npz}: y_train differs from MNIST"):
        load_dataset("mnist", data_dir=npz, download=False)


def test_download_fills_the_keras_cache(real_dirs, isolated, monkeypatch, capsys):
    # A file:// "server" exercises the real download code without a network.
    server = linked_copy(idx_dir(real_dirs, "fashion_mnist"), isolated / "server")
    monkeypatch.setattr(data, "KERAS_URL", server.as_uri() + "/")
    ds = load_dataset("fashion_mnist", download=True)
    cache = isolated / "home" / "keras" / "datasets" / "fashion-mnist"
    assert ds.source == str(cache)
    for fname in IDX_FILES.values():
        assert (cache / fname).is_file() and not (cache / fname).is_symlink()
        assert (cache / fname).read_bytes() == (server / fname).read_bytes()
    assert not [p for p in cache.iterdir() if p.name.startswith(".")]  # no temp files left behind
    assert "downloading" in capsys.readouterr().err


def test_failed_download_is_listed_with_its_reason(isolated, monkeypatch):
    monkeypatch.setattr(data, "KERAS_URL", (isolated / "nowhere").as_uri() + "/")
    with pytest.raises(DatasetNotFoundError, match=r"download into .*mnist.npz: download of file://.*failed"):
        load_dataset("mnist", download=True)
    assert not (isolated / "home" / "keras" / "datasets" / "mnist.npz").exists()


def test_dataset_checks_its_arrays():
    x, y = np.zeros((3, 784), np.float32), np.zeros(3, np.int64)
    with pytest.raises(ValueError, match=r"x_train must be float32 \(n, 784\), found float64"):
        Dataset("mnist", x.astype(np.float64), y, x, y, "here")
    with pytest.raises(ValueError, match=r"y_test must be int64 \(3,\) to match x_test, found int64 \(2,\)"):
        Dataset("mnist", x, y, x, y[:2], "here")
    assert "train=3" in repr(Dataset("mnist", x, y, x, y, os.devnull))
