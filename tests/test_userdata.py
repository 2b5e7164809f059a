"""A user's own data (.npz with x and y): checked before any work, every error naming the array."""

import numpy as np
import pytest

from sparsenet.userdata import load_labelled, user_dataset


def save(path, **arrays):
    np.savez(path, **arrays)
    return path


@pytest.fixture
def xy(rng):
    return rng.standard_normal((40, 3, 4)).astype(np.float32), rng.integers(0, 5, 40)


def test_inputs_are_flattened_to_float32_rows_and_labels_to_int64(tmp_path, xy):
    x, y = load_labelled(save(tmp_path / "d.npz", x=xy[0].astype(np.float64), y=xy[1].astype(np.uint8)), 12, 5)
    assert x.dtype == np.float32 and x.shape == (40, 12) and x.flags.c_contiguous
    np.testing.assert_array_equal(x, xy[0].reshape(40, 12))
    assert y.dtype == np.int64 and (y == xy[1]).all()


def test_float_labels_that_are_whole_numbers_are_accepted(tmp_path, xy):
    _, y = load_labelled(save(tmp_path / "d.npz", x=xy[0], y=xy[1].astype(np.float32)))
    assert y.dtype == np.int64


@pytest.mark.parametrize("change, match", [
    (lambda x, y: {"x": x}, r"lacks array\(s\) \['y'\]"),
    (lambda x, y: {"x": x[:0], "y": y[:0]}, r"array 'x' must hold at least one sample"),
    (lambda x, y: {"x": x[:, 0, 0], "y": y}, r"array 'x' must hold .* shape \(40,\)"),
    (lambda x, y: {"x": x, "y": y[:-1]}, r"array 'y' must be 1-D with one label per row .* found shape \(39,\)"),
    (lambda x, y: {"x": np.where(x > 1, np.nan, x), "y": y}, r"array 'x' holds \d+ NaN/inf values"),
    (lambda x, y: {"x": x, "y": y + 0.5}, r"array 'y' must hold integer class labels, found dtype float64"),
    (lambda x, y: {"x": x, "y": y - 1}, r"labels must lie in 0..4, found \d+ outside \(e.g. -1\)"),
    (lambda x, y: {"x": x, "y": y + 5}, r"labels must lie in 0..4, found 40 outside"),
    (lambda x, y: {"x": x.reshape(40, -1)[:, :10], "y": y}, r"samples have 10 values .* the network takes 12"),
])
def test_bad_data_is_refused_naming_the_array(tmp_path, xy, change, match):
    path = save(tmp_path / "bad.npz", **change(*xy))
    with pytest.raises((ValueError, TypeError), match=match) as info:
        load_labelled(path, 12, 5)
    assert str(path) in str(info.value)


def test_missing_and_non_npz_files(tmp_path):
    with pytest.raises(FileNotFoundError, match="no such data file"):
        load_labelled(tmp_path / "nope.npz")
    (tmp_path / "text.npz").write_text("x,y\n1,2\n")
    with pytest.raises(ValueError, match=r"text.npz: not a readable \.npz file \(not a zip archive") as err:
        load_labelled(tmp_path / "text.npz")
    assert "pickle" not in str(err.value)  # numpy's hint for a non-zip file, which misleads here
    np.save(tmp_path / "obj.npy", np.array([{"a": 1}], dtype=object))
    np.savez(tmp_path / "obj.npz", x=np.array([[{"a": 1}]], dtype=object), y=np.zeros(1, int))
    with pytest.raises(ValueError, match="obj.npz"):
        load_labelled(tmp_path / "obj.npz")


def test_user_dataset_with_and_without_training_data(tmp_path, xy):
    test = save(tmp_path / "test.npz", x=xy[0], y=xy[1])
    train = save(tmp_path / "train.npz", x=xy[0][:30], y=xy[1][:30])
    only = user_dataset(test, n_in=12, n_classes=5)
    assert only.name == "test" and not only.has_train and only.x_train.shape == (0, 12)
    both = user_dataset(test, train, n_in=12, n_classes=5)
    assert both.has_train and both.x_train.shape == (30, 12) and "train.npz" in both.source
    save(tmp_path / "wide.npz", x=np.zeros((4, 13), np.float32), y=np.zeros(4, int))
    with pytest.raises(ValueError, match=r"wide.npz: samples have 13 values"):
        user_dataset(test, tmp_path / "wide.npz", n_in=12, n_classes=5)
