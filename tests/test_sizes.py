"""sparsenet.sizes: bytes in memory, on disk and zipped, measured on real objects and files."""

import zipfile

import numpy as np
import pytest

from sparsenet import convert, prune
from sparsenet.export import load_pruned
from sparsenet.formats import FORMATS
from sparsenet.io import load_network
from sparsenet.sizes import dense_file_bytes, file_bytes, kept_bytes, network_sizes, zipped_size

from conftest import random_net


def test_kept_bytes_counts_each_buffer_once_through_views_and_containers():
    flat = np.zeros(1000, np.float32)
    views = (flat[:500].reshape(20, 25), flat[500:])
    other = np.ones(10, np.int16)
    holder = {"a": views, "b": [other, other], "c": None, "d": "text"}
    assert kept_bytes(holder) == flat.nbytes + other.nbytes
    assert kept_bytes([np.empty(0)]) == 0


def test_every_format_keeps_at_least_its_kept_weights_and_sparse_ones_less_than_dense(rng):
    net = random_net(rng, (60, 40, 30, 5), bias=True)
    masked = prune(net, "weight", 0.9)
    x = rng.random((3, 60)).astype(np.float32)
    sizes = {}
    for fmt in (f for f, cls in FORMATS.items() if cls.kind != "engine"):  # engines: tests/test_engines.py
        forward = convert(masked, fmt)
        forward(x)
        sizes[fmt] = forward.in_memory_bytes
        assert sizes[fmt] >= 4 * forward.nnz, fmt
    dense = 4 * sum(layer.weight.size + layer.bias.size for layer in net.layers)
    assert sizes["dense"] == dense
    assert sizes["csr_numba"] < dense / 3


def test_auto_counts_the_candidate_it_chose_not_all_of_them(rng, monkeypatch, tmp_path):
    import sparsenet.formats.auto as auto

    monkeypatch.setenv("SPARSENET_CACHE", str(tmp_path))
    monkeypatch.setattr(auto, "MEASURE_S", 0.0)
    monkeypatch.setattr(auto, "SETTLE_S", 0.0)
    masked = prune(random_net(rng, (50, 40, 10)), "unit", 0.5)
    forward = convert(masked, "auto")
    every = kept_bytes(list(forward.candidates.values()))
    assert forward.in_memory_bytes == every  # nothing chosen yet
    forward(rng.random((1, 50)).astype(np.float32))
    chosen = forward.candidates[forward.choice(1)]
    assert forward.in_memory_bytes == kept_bytes(chosen) < every


def test_file_bytes_are_the_real_files_and_the_dense_file_keeps_zeros_in_place(rng, tmp_path):
    net = random_net(rng, (200, 100, 10), bias=True)
    masked = prune(net, "weight", 0.95)
    dense_disk, dense_zip = file_bytes(masked, "dense")
    compact_disk, compact_zip = file_bytes(masked, "compact")
    assert dense_disk == dense_file_bytes(net)  # zeros in place: as big as the unpruned file
    assert dense_zip < dense_disk / 5  # ... until zipped
    assert compact_disk < dense_disk / 5 and compact_zip < 1.02 * compact_disk  # already deflated
    shrunk_disk, _ = file_bytes(prune(net, "unit", 0.5), "shrunk")
    assert shrunk_disk < 0.7 * dense_disk
    with pytest.raises(ValueError, match="saved_as"):
        file_bytes(masked, "tar")


def test_zipped_size_is_a_real_deflated_archive(tmp_path):
    path = tmp_path / "zeros.bin"
    path.write_bytes(bytes(100_000))
    size = zipped_size(path)
    assert 100 < size < 2_000
    archive = tmp_path / "check.zip"
    with zipfile.ZipFile(archive, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=9) as zf:
        zf.write(path, arcname=path.name)
    assert size == archive.stat().st_size


def test_network_sizes_follow_the_formats_saved_as(rng):
    masked = prune(random_net(rng, (30, 20, 5)), "weight", 0.5)
    for fmt in ("dense", "csr_numba", "shrunk"):
        forward = convert(masked, fmt)
        sizes = network_sizes(masked, forward)
        assert sizes.saved_as == forward.saved_as
        on_disk, zipped = file_bytes(masked, forward.saved_as)
        assert sizes.on_disk_bytes == on_disk
        assert abs(sizes.zipped_bytes - zipped) <= 8  # the zip members' timestamps deflate a byte or two apart
        assert sizes.in_memory_bytes == forward.in_memory_bytes


def test_the_measured_files_load_back(rng, tmp_path):
    """The files measured are the ones a user deploys: they load, with the same network."""
    masked = prune(random_net(rng, (30, 20, 5)), "weight", 0.5)
    assert file_bytes(masked, "compact", tmp_path)[0] == (tmp_path / "network.spz").stat().st_size
    assert file_bytes(masked, "dense", tmp_path)[0] == (tmp_path / "network.npz").stat().st_size
    loaded = load_pruned(tmp_path / "network.spz")
    assert [m.sum() for m in loaded.masks.weight] == [m.sum() for m in masked.masks.weight]
    np.testing.assert_array_equal(load_network(tmp_path / "network.npz").layers[0].weight, masked.masked_weights()[0])
