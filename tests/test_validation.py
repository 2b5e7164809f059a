import numpy as np
import pytest

from sparsenet import FORMATS, Layer, Network, convert, prune
from sparsenet.activations import softmax

from conftest import random_net


@pytest.mark.parametrize("bad", [-0.1, 1.0, 1.5, 90, float("nan")])
def test_sparsity_outside_unit_interval_is_rejected(small_net, bad):
    with pytest.raises(ValueError, match="sparsity must be in \\[0, 1\\)"):
        prune(small_net, "weight", bad)


def test_sparsity_given_in_percent_gets_a_hint(small_net):
    with pytest.raises(ValueError, match="give a fraction"):
        prune(small_net, "weight", 90)


@pytest.mark.parametrize("kwargs, match", [
    ({"method": "magnitude"}, "unknown pruning method 'magnitude'; choose one of \\['block', 'unit', 'weight'\\]"),
    ({"method": "weight", "scope": "flat"}, "unknown scope 'flat'"),
])
def test_unknown_method_or_scope(small_net, kwargs, match):
    with pytest.raises(ValueError, match=match):
        prune(small_net, sparsity=0.5, **kwargs)


def test_unknown_format(small_net):
    with pytest.raises(ValueError, match="unknown format 'csr'; choose one of"):
        convert(prune(small_net, "weight", 0.5), "csr")


def test_nan_weights_are_rejected(rng):
    w = rng.standard_normal((4, 3)).astype(np.float32)
    w[1, 2] = np.nan
    with pytest.raises(ValueError, match="1 NaN/inf"):
        Network((Layer(w, None, "relu"),))


def test_layers_must_chain(rng):
    a = Layer(np.ones((4, 3), np.float32), None, "relu")
    b = Layer(np.ones((2, 5), np.float32), None, "softmax")
    with pytest.raises(ValueError, match="layer 1: expects 5 inputs but layer 0 has 4 outputs"):
        Network((a, b))


def test_bias_shape_and_activation_checked():
    with pytest.raises(ValueError, match="bias must have shape \\(4,\\)"):
        Network((Layer(np.ones((4, 3), np.float32), np.ones(3, np.float32), "relu"),))
    with pytest.raises(ValueError, match="unknown activation 'swish'"):
        Network((Layer(np.ones((4, 3), np.float32), None, "swish"),))


def test_activation_names_are_the_registry():
    from sparsenet.activations import ACTIVATIONS
    from sparsenet.validation import ACTIVATION_NAMES

    assert sorted(ACTIVATION_NAMES) == sorted(ACTIVATIONS)


HIDDEN_SOFTMAX = (r"layer 0: softmax is only supported as the output layer's activation "
                  r"\(forward passes return logits\)")


def test_hidden_softmax_is_refused():
    """Formats treat softmax as linear (they return logits), so a hidden softmax used to be
    computed as linear: this network gave 2.0 for [2, 0] where softmax gives 1.0."""
    eye, ones = np.eye(2, dtype=np.float32), np.ones((1, 2), np.float32)
    with pytest.raises(ValueError, match=HIDDEN_SOFTMAX):
        Network((Layer(eye, None, "softmax"), Layer(ones, None, "softmax")))
    x = np.array([[2.0, 0.0]], np.float32)
    as_linear = Network((Layer(eye, None, "linear"), Layer(ones, None, "softmax")))
    assert convert(prune(as_linear, "weight", 0.0), "dense")(x)[0, 0] == 2.0  # what a hidden softmax gave
    assert softmax(x.copy()).sum() == pytest.approx(1.0)  # what a softmax there gives
    Network((Layer(eye, None, "relu"), Layer(ones, None, "softmax")))  # the output layer's softmax is fine


@pytest.mark.parametrize("fmt", sorted(f for f, cls in FORMATS.items() if cls.kind != "engine"))  # test_engines
def test_batch_of_wrong_width_or_dtype(rng, fmt):
    forward = convert(prune(random_net(rng, (12, 8, 3)), "weight", 0.5), fmt)
    with pytest.raises(ValueError, match="input must have shape \\(n_batch, 12\\), found \\(5, 11\\)"):
        forward(np.zeros((5, 11), np.float32))
    with pytest.raises(ValueError, match="found \\(12,\\)"):
        forward(np.zeros(12, np.float32))
    with pytest.raises(TypeError, match="input dtype must be float32.*found float64"):
        forward(np.zeros((5, 12), np.float64))
