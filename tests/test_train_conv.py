"""The MobileNetV2 training recipe's augmentation (sparsenet.train_conv.augmented): every image
comes out as a left-right flip and/or a shift of at most SHIFT_PIXELS of itself, zeros filled in,
labels untouched, the same draws for the same seed and different ones for another."""

import numpy as np
import pytest

from sparsenet.train_conv import SHIFT_PIXELS, ConvTrainConfig, augmented, config_key

tf = pytest.importorskip("tensorflow")


def _candidates(image: np.ndarray):
    """Every flip/shift of ``image`` (H, W, C) the augmentation may produce."""
    s = SHIFT_PIXELS
    padded_images = [np.pad(im, ((s, s), (s, s), (0, 0))) for im in (image, image[:, ::-1])]
    h, w = image.shape[:2]
    for flipped, padded in enumerate(padded_images):
        for dy in range(2 * s + 1):
            for dx in range(2 * s + 1):
                yield (flipped, dy - s, dx - s), padded[dy:dy + h, dx:dx + w]


def _draws(seed: int, x: np.ndarray, y: np.ndarray):
    out = list(augmented(tf, tf.data.Dataset.from_tensor_slices((x, y)), seed).as_numpy_iterator())
    return np.stack([a for a, _ in out]), np.array([b for _, b in out])


def test_each_image_is_a_flip_or_shift_of_itself():
    rng = np.random.default_rng(0)
    x = rng.random((40, 8, 8, 1), dtype=np.float32) + 0.1  # no zeros: a shift shows as a zero border
    y = np.arange(40)
    images, labels = _draws(3, x, y)
    np.testing.assert_array_equal(labels, y)
    seen = set()
    for original, out in zip(x, images):
        matches = [t for t, cand in _candidates(original) if np.array_equal(cand, out)]
        assert matches, "an augmented image is no flip/shift of its input"
        seen.add(matches[0])
    assert len(seen) > 10 and {t[0] for t in seen} == {0, 1}  # both flips and many shifts drawn
    assert max(abs(t[1]) for t in seen) == SHIFT_PIXELS


def test_draws_are_seeded():
    x = np.random.default_rng(1).random((16, 6, 6, 1), dtype=np.float32)
    y = np.zeros(16, np.int64)
    np.testing.assert_array_equal(_draws(0, x, y)[0], _draws(0, x, y)[0])
    assert not np.array_equal(_draws(0, x, y)[0], _draws(1, x, y)[0])


def test_augmentation_is_part_of_the_cache_key():
    assert config_key(ConvTrainConfig()) != config_key(ConvTrainConfig(augment=False))
