"""CIFAR-10 reader on small archives in the original format, and the fashion_mnist_32 stand-in."""

import io
import os
import pickle
import struct
import tarfile

import numpy as np
import pytest

from sparsenet import FileFormatError, cifar10
from sparsenet.data import DatasetNotFoundError, load_dataset
from sparsenet.image_data import load_image_dataset, pad_to_32

N = 12  # images per batch


def py2_pickle(obj) -> bytes:
    """Protocol-2 opcodes as Python 2's cPickle wrote the original batches: str as BINSTRING, the array
    through numpy.core.multiarray._reconstruct and a numpy.dtype('u1') with its 8-tuple state."""
    out = bytearray(b"\x80\x02")

    def put(o):
        if o is None:
            out.extend(b"N")
        elif isinstance(o, bool):
            out.extend(b"\x88" if o else b"\x89")
        elif isinstance(o, int):
            out.extend(b"J" + struct.pack("<i", o))
        elif isinstance(o, bytes):
            out.extend((b"U" + bytes([len(o)]) if len(o) < 256 else b"T" + struct.pack("<I", len(o))) + o)
        elif isinstance(o, tuple):
            out.extend(b"(")
            for v in o:
                put(v)
            out.extend(b"t")
        elif isinstance(o, list):
            out.extend(b"]")
            if o:
                out.extend(b"(")
                for v in o:
                    put(v)
                out.extend(b"e")
        elif isinstance(o, dict):
            out.extend(b"}(")
            for k, v in o.items():
                put(k)
                put(v)
            out.extend(b"u")
        elif isinstance(o, np.ndarray):
            out.extend(b"cnumpy.core.multiarray\n_reconstruct\ncnumpy\nndarray\n")
            put((0,))
            put(b"b")
            out.extend(b"\x87R")  # TUPLE3 (class, (0,), 'b'), REDUCE
            out.extend(b"(J\x01\x00\x00\x00")
            put(tuple(o.shape))
            out.extend(b"cnumpy\ndtype\n")
            put((b"u1", 0, 1))
            out.extend(b"R")
            put((3, b"|", None, None, None, -1, -1, 0))
            out.extend(b"b")  # BUILD the dtype
            put(False)
            put(o.tobytes())
            out.extend(b"tb")  # the array state tuple, BUILD
        else:
            raise TypeError(type(o))

    put(obj)
    return bytes(out + b".")


def batches(rng, n=N):
    out = {}
    for name in (*cifar10.TRAIN_BATCHES, cifar10.TEST_BATCH):
        data = rng.integers(0, 256, (n, 3072), dtype=np.uint8)
        labels = [int(v) for v in rng.integers(0, 10, n)]
        out[name] = {b"batch_label": name.encode(), b"labels": labels, b"data": data,
                     b"filenames": [f"img_{i}.png".encode() for i in range(n)]}
    out[cifar10.META] = {b"num_cases_per_batch": n, b"label_names": [s.encode() for s in cifar10.LABEL_NAMES],
                         b"num_vis": 3072}
    return out


def write_archive(path, contents, dumps=py2_pickle):
    with tarfile.open(path, "w:gz") as tar:
        for name, obj in contents.items():
            blob = dumps(obj) if not isinstance(obj, bytes) else obj
            info = tarfile.TarInfo(f"{cifar10.FOLDER}/{name}")
            info.size = len(blob)
            tar.addfile(info, io.BytesIO(blob))
    return path


@pytest.fixture
def no_places(tmp_path, monkeypatch):
    """No environment place, an empty Keras cache: only what a test passes is found."""
    monkeypatch.delenv("SPARSENET_DATA_DIR", raising=False)
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "keras"))


def test_archive_reads_back_as_nhwc_images(rng, tmp_path, no_places):
    contents = batches(rng)
    write_archive(tmp_path / "cifar-10-python.tar.gz", contents)
    d = load_dataset("cifar10", data_dir=tmp_path, download=False)
    assert d.image_shape == (32, 32, 3) and d.x_train.shape == (5 * N, 3072) and d.x_test.shape == (N, 3072)
    assert d.x_train.dtype == np.float32 and d.y_train.dtype == np.int64 and not d.x_train.flags.writeable
    raw = contents["data_batch_2"][b"data"][3]  # CHW: 1024 red, 1024 green, 1024 blue
    image = d.x_train[N + 3].reshape(32, 32, 3)
    pixel = 5 * 32 + 7  # row 5, column 7
    np.testing.assert_array_equal(image[5, 7], raw[[pixel, 1024 + pixel, 2048 + pixel]] / np.float32(255))
    assert d.y_test.tolist() == contents["test_batch"][b"labels"]
    assert d.source.endswith("cifar-10-python.tar.gz")


def test_unpacked_folder_and_python3_pickles_read_too(rng, tmp_path, no_places, monkeypatch):
    contents = batches(rng)
    folder = tmp_path / cifar10.FOLDER
    folder.mkdir()
    for name, obj in contents.items():  # Python 3's own protocol-2 pickles: _codecs.encode, numpy._core names
        (folder / name).write_bytes(pickle.dumps(obj, protocol=2))
    monkeypatch.setenv("SPARSENET_DATA_DIR", str(tmp_path))
    d = load_dataset("cifar10", download=False)
    assert d.source == str(folder) and d.y_train.tolist()[:N] == contents["data_batch_1"][b"labels"]
    x = d.x_test.reshape(N, 32, 32, 3).transpose(0, 3, 1, 2).reshape(N, 3072)
    np.testing.assert_array_equal(np.round(x * 255).astype(np.uint8), contents["test_batch"][b"data"])


class Boom:
    def __reduce__(self):
        return (os.system, ("touch /tmp/sparsenet_cifar_pwned",))


def test_a_pickle_with_any_other_global_is_refused_unrun(rng, tmp_path, no_places):
    contents = batches(rng)
    contents["data_batch_3"] = pickle.dumps({b"data": Boom()}, protocol=2)
    write_archive(tmp_path / "cifar-10-python.tar.gz", contents)
    with pytest.raises(FileFormatError, match=r"data_batch_3.*asks for (posix|os)\.system"):
        load_dataset("cifar10", data_dir=tmp_path, download=False)
    assert not os.path.exists("/tmp/sparsenet_cifar_pwned")


@pytest.mark.parametrize("damage,message", [
    (lambda c: c["test_batch"].__setitem__(b"labels", [10] * N),
     r"test_batch.*holds label 10, expected class ids 0..9"),
    (lambda c: c["data_batch_1"].__setitem__(b"data", np.zeros((N, 3000), np.uint8)),
     r"data_batch_1.*'data' is ndarray uint8 \(12, 3000\), expected uint8 \(n, 3072\)"),
    (lambda c: c["data_batch_4"].__setitem__(b"labels", [1] * (N - 1)), r"data_batch_4.*list of 12 ints"),
    (lambda c: c.pop("batches.meta"), r"holds no batches.meta"),
])
def test_damaged_batches_are_named(rng, tmp_path, no_places, damage, message):
    contents = batches(rng)
    damage(contents)
    write_archive(tmp_path / "cifar-10-python.tar.gz", contents)
    with pytest.raises(FileFormatError, match=message):
        load_dataset("cifar10", data_dir=tmp_path, download=False)


def test_oversized_and_truncated_files_are_refused(rng, tmp_path, no_places, monkeypatch):
    path = write_archive(tmp_path / "cifar-10-python.tar.gz", batches(rng))
    monkeypatch.setattr(cifar10, "MAX_MEMBER_BYTES", 20_000)  # a 12-image batch is ~37 kB
    with pytest.raises(FileFormatError, match=r"data_batch_1 is \d+ bytes, more than the 20000"):
        load_dataset("cifar10", data_dir=tmp_path, download=False)
    monkeypatch.undo()
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "keras"))
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    with pytest.raises(FileFormatError, match=r"cifar-10-python.tar.gz is not a readable .tar.gz archive"):
        load_dataset("cifar10", data_dir=path, download=False)


def test_not_found_names_every_place_and_the_fixes(tmp_path, no_places, monkeypatch):
    monkeypatch.setenv("SPARSENET_DATA_DIR", str(tmp_path / "env"))
    with pytest.raises(DatasetNotFoundError) as err:
        load_dataset("cifar10", download=False)
    text = str(err.value)
    for place in (tmp_path / "env" / cifar10.FOLDER, tmp_path / "keras" / "datasets" / "cifar-10-python.tar.gz"):
        assert str(place) in text
    assert cifar10.URL in text and cifar10.MD5 in text and "fashion_mnist_32" in text and "download=False" in text


def test_a_download_with_the_wrong_md5_is_deleted(tmp_path, no_places, monkeypatch):
    """No network here: the fetch is replaced by one that writes the wrong bytes."""
    from sparsenet import data

    def fetch(url, target):
        target.parent.mkdir(parents=True)
        target.write_bytes(b"x")

    monkeypatch.setattr(data, "_fetch", fetch)
    with pytest.raises(DatasetNotFoundError, match=r"has md5 9dd4e461268c8034f5c8564e155c67a6, expected c58f3"):
        load_dataset("cifar10")
    assert not (tmp_path / "keras" / "datasets" / "cifar-10-python.tar.gz").exists()


def test_fashion_mnist_32_is_fashion_mnist_padded():
    one = load_image_dataset("fashion_mnist_32")
    base = load_dataset("fashion_mnist")
    assert one.image_shape == (32, 32, 1) and one.x_train.shape == (60000, 1024) and not one.x_train.flags.writeable
    image = one.x_test[7].reshape(32, 32)
    np.testing.assert_array_equal(image[2:30, 2:30], base.x_test[7].reshape(28, 28))
    assert image[:2].max() == image[30:].max() == image[:, :2].max() == image[:, 30:].max() == 0
    three = pad_to_32(base.x_test[:8], channels=3)  # what channels=3 returns, on a slice (the whole set is 860 MB)
    np.testing.assert_array_equal(three[7].reshape(32, 32, 3), np.repeat(image[:, :, None], 3, axis=2))
    assert "padded to 32x32" in one.source and (one.y_test == base.y_test).all()
    with pytest.raises(ValueError, match="fashion_mnist_32 has 1 channel or 3"):
        load_image_dataset("fashion_mnist_32", channels=2)
