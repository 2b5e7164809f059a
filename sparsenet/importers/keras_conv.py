"""Keras convolutional models (MobileNetV2 and its kin) as sparsenet networks.

A functional model whose layers, in Keras' (topological) order, form a chain plus residual adds:
``Conv2D`` (any kernel, equal strides, ``same``/``valid``, no dilation or groups),
``DepthwiseConv2D`` (depth multiplier 1), ``BatchNormalization`` right after a convolution or
dense layer (folded into it: ``w * gamma / sqrt(var + eps)`` per output channel and
``(b - mean) * gamma / sqrt(var + eps) + beta``), ``ReLU`` (plain or ``max_value=6``, as relu6),
``Activation``, ``Softmax``, ``ZeroPadding2D`` (folded into the next layer's pads),
``Add`` of the newest layer's output and an earlier one (``residual_from``),
``GlobalAveragePooling2D``, ``Flatten``, ``Dense``, and ``Dropout``/``InputLayer`` (nothing at
inference). Anything else is refused by name, as is an edge a :class:`sparsenet.Network` cannot
hold (a value read after it was changed by a folded layer, a branch that is not a residual add).

Weight orientation as in :mod:`sparsenet.layers`: Keras' ``(kh, kw, C_in, C_out)`` conv kernel is
transposed once to ``(C_out, kh, kw, C_in)``, the depthwise ``(kh, kw, C, 1)`` to ``(C, kh, kw)``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ..layers import Conv2D, DepthwiseConv2D, GlobalAvgPool, Layer
from ..layers._spatial import output_hw, same_pads
from ..model import Network
from ._stack import UnsupportedModelError

# layer types that send a Keras model here rather than to the dense-chain reader
CONV_TYPES = frozenset({"Conv2D", "DepthwiseConv2D", "BatchNormalization", "Add", "ZeroPadding2D",
                        "GlobalAveragePooling2D"})
PASS_THROUGH = ("InputLayer", "Dropout", "SpatialDropout2D", "GaussianDropout", "AlphaDropout", "GaussianNoise")
ACTIVATIONS = {"relu": "relu", "relu6": "relu6", "linear": "linear", "softmax": "softmax", "tanh": "tanh",
               "sigmoid": "sigmoid", "gelu": "gelu"}
SUPPORTED = ("Conv2D, DepthwiseConv2D (depth multiplier 1), BatchNormalization after a convolution or Dense, "
             "ReLU / ReLU(6) / Activation, ZeroPadding2D, Add (residual), GlobalAveragePooling2D, Flatten, Dense, "
             "Dropout; channels_last, no dilation or groups")


@dataclass(frozen=True)
class _Ref:
    """What one Keras tensor is in sparsenet terms."""

    index: int  # the sparsenet layer whose output it is; -1: the network input
    version: int  # how many folds (BN, activation, add) that layer had when this tensor was made
    shape: tuple[int, ...]  # per sample, (H, W, C) or (n,)
    pads: tuple[int, int, int, int] = (0, 0, 0, 0)  # ZeroPadding2D waiting for the next layer


@dataclass
class ConvStack:
    """The layers read so far, as keyword dicts for the layer classes; duck-types :class:`._stack.Stack`."""

    path: str
    specs: list = field(default_factory=list)
    versions: list = field(default_factory=list)
    names: list = field(default_factory=list)

    def refuse(self, name: str, kind: str, why: str = "") -> UnsupportedModelError:
        why = f" ({why})" if why else ""
        return UnsupportedModelError(self.path, f"layer {name!r} of type {kind} is not supported{why}; "
                                                f"sparsenet imports convolutional models made of {SUPPORTED}")

    def newest(self, ref: _Ref, name: str, kind: str) -> None:
        """Refuse unless ``ref`` is the current output of the newest layer (or the input, before any)."""
        last = len(self.specs) - 1
        if ref.index != last or (last >= 0 and ref.version != self.versions[last]):
            raise self.refuse(name, kind, "its input is not the newest layer's current output: the model branches "
                                          "in a way other than a residual Add")

    def add(self, name: str, spec: dict, shape: tuple) -> _Ref:
        self.specs.append(spec)
        self.versions.append(0)
        self.names.append([name])
        return _Ref(len(self.specs) - 1, 0, shape)

    def fold(self, name: str) -> _Ref:
        """The newest layer changed (a BN, an activation or an add folded in): a new version of its output."""
        self.versions[-1] += 1
        self.names[-1].append(name)
        return _Ref(len(self.specs) - 1, self.versions[-1], self.shape)

    @property
    def shape(self) -> tuple[int, ...]:
        return self.specs[-1]["output_shape"]

    def network(self) -> Network:
        if not self.specs:
            raise UnsupportedModelError(self.path, f"holds no layer with weights; sparsenet imports {SUPPORTED}")
        layers = []
        for spec in self.specs:
            spec = {k: v for k, v in spec.items() if k != "output_shape"}
            cls = {"conv2d": Conv2D, "depthwise_conv2d": DepthwiseConv2D, "global_avg_pool": GlobalAvgPool,
                   "dense": Layer}[spec.pop("kind")]
            layers.append(cls(**spec))
        return Network(tuple(layers))


def read_conv(model, path: str, input_shape: tuple, keras) -> ConvStack:
    """Walk ``model``'s layers into a :class:`ConvStack` (see the module docstring for what is read)."""
    stack = ConvStack(str(path))
    refs = {id(model.inputs[0]): _Ref(-1, 0, tuple(int(d) for d in input_shape))}
    for layer in model.layers:
        kind, name = type(layer).__name__, layer.name
        if kind == "InputLayer":
            continue
        inputs = layer.input if isinstance(layer.input, list | tuple) else [layer.input]
        if any(id(t) not in refs for t in inputs):
            raise stack.refuse(name, kind, "it reads a tensor that no supported layer produced")
        ins = [refs[id(t)] for t in inputs]
        if kind != "Add" and len(ins) != 1:
            raise stack.refuse(name, kind, f"{len(ins)} inputs")
        refs[id(layer.output)] = _read(stack, layer, kind, name, ins, keras)
    if id(model.outputs[0]) not in refs:
        raise UnsupportedModelError(path, "the model's output is not produced by a supported layer")
    stack.newest(refs[id(model.outputs[0])], "(model output)", "output")
    return stack


def _read(stack: ConvStack, layer, kind: str, name: str, ins: list[_Ref], keras) -> _Ref:
    ref = ins[0]
    if kind in PASS_THROUGH:
        return ref
    if kind == "ZeroPadding2D":
        stack.newest(ref, name, kind)
        (top, bottom), (left, right) = layer.padding
        _channels_last(stack, layer, name, kind)
        p = ref.pads
        h, w, c = ref.shape
        return _Ref(ref.index, ref.version, (h, w, c), (p[0] + top, p[1] + bottom, p[2] + left, p[3] + right))
    if kind == "Add":
        return _residual(stack, ins, name, kind)
    if kind in ("BatchNormalization", "ReLU", "Activation", "Softmax"):
        stack.newest(ref, name, kind)
        if any(ref.pads) or ref.index < 0 or stack.specs[-1]["kind"] == "global_avg_pool":
            raise stack.refuse(name, kind, "it does not follow a convolution or dense layer directly")
        spec = stack.specs[-1]
        if spec.get("residual_from") is not None:
            raise stack.refuse(name, kind, "applied after a residual Add: sparsenet adds after the activation")
        if kind == "BatchNormalization":
            _fold_bn(stack, layer, spec, name, kind)
        else:
            act = _activation(stack, layer, kind, name, keras)
            if act != "linear":
                if spec["activation"] != "linear":
                    raise stack.refuse(name, kind, f"activation {act!r} after {spec['activation']!r}")
                spec["activation"] = act
        return stack.fold(name)
    if kind == "Dense":
        stack.newest(ref, name, kind)
        if len(ref.shape) != 1:
            raise stack.refuse(name, kind, f"applied to a rank-{len(ref.shape)} input {ref.shape}; add a Flatten "
                                           "or GlobalAveragePooling2D before it")
        kernel, *rest = layer.get_weights()
        spec = dict(kind="dense", weight=np.ascontiguousarray(np.asarray(kernel, np.float32).T),
                    bias=np.asarray(rest[0], np.float32) if layer.use_bias else None,
                    activation=_activation(stack, layer, kind, name, keras), output_shape=(int(kernel.shape[1]),))
        return stack.add(name, spec, spec["output_shape"])
    if kind == "Flatten":
        stack.newest(ref, name, kind)
        return _Ref(ref.index, ref.version, (int(np.prod(ref.shape)),))
    if kind == "GlobalAveragePooling2D":
        stack.newest(ref, name, kind)
        _channels_last(stack, layer, name, kind)
        if getattr(layer, "keepdims", False) or len(ref.shape) != 3 or any(ref.pads):
            raise stack.refuse(name, kind, "keepdims=True, a non-spatial input or a ZeroPadding2D before it")
        spec = dict(kind="global_avg_pool", input_shape=ref.shape, output_shape=(ref.shape[2],))
        return stack.add(name, spec, spec["output_shape"])
    if kind in ("Conv2D", "DepthwiseConv2D"):
        stack.newest(ref, name, kind)
        return _conv(stack, layer, kind, name, ref, keras)
    raise stack.refuse(name, kind)


def _channels_last(stack: ConvStack, layer, name: str, kind: str) -> None:
    if getattr(layer, "data_format", "channels_last") != "channels_last":
        raise stack.refuse(name, kind, f"data_format={layer.data_format!r}; only channels_last")


def _conv(stack: ConvStack, layer, kind: str, name: str, ref: _Ref, keras) -> _Ref:
    _channels_last(stack, layer, name, kind)
    if len(ref.shape) != 3:
        raise stack.refuse(name, kind, f"applied to an input of shape {ref.shape}, expected (H, W, C)")
    (kh, kw), (sh, sw) = tuple(layer.kernel_size), tuple(layer.strides)
    if sh != sw or tuple(layer.dilation_rate) != (1, 1) or getattr(layer, "groups", 1) != 1:
        raise stack.refuse(name, kind, f"strides {layer.strides}, dilation {layer.dilation_rate}, groups "
                                       f"{getattr(layer, 'groups', 1)}; only equal strides, no dilation, groups=1")
    h, w, c = ref.shape
    pads = ref.pads
    if layer.padding == "same":
        extra = same_pads((h + pads[0] + pads[1], w + pads[2] + pads[3]), (kh, kw), sh)
        pads = tuple(a + b for a, b in zip(pads, extra))
    elif layer.padding != "valid":
        raise stack.refuse(name, kind, f"padding={layer.padding!r}; only 'same' and 'valid'")
    weights = layer.get_weights()
    if kind == "DepthwiseConv2D":
        if layer.depth_multiplier != 1:
            raise stack.refuse(name, kind, f"depth_multiplier={layer.depth_multiplier}; only 1")
        weight = np.asarray(weights[0], np.float32)[:, :, :, 0].transpose(2, 0, 1)
        c_out = c
    else:
        weight = np.asarray(weights[0], np.float32).transpose(3, 0, 1, 2)
        c_out = weight.shape[0]
    ho, wo = output_hw((h, w), (kh, kw), sh, pads)
    spec = dict(kind="conv2d" if kind == "Conv2D" else "depthwise_conv2d", weight=np.ascontiguousarray(weight),
                bias=np.asarray(weights[1], np.float32) if layer.use_bias else None,
                activation=_activation(stack, layer, kind, name, keras), input_hw=(h, w), stride=int(sh),
                pads=pads, output_shape=(ho, wo, c_out))
    if kind == "Conv2D":
        spec["residual_from"] = None
    return stack.add(name, spec, spec["output_shape"])


def _fold_bn(stack: ConvStack, layer, spec: dict, name: str, kind: str) -> None:
    if spec["kind"] not in ("conv2d", "depthwise_conv2d", "dense") or spec["activation"] != "linear":
        raise stack.refuse(name, kind, "a BatchNormalization folds only into a convolution or Dense layer "
                                       f"without an activation, found it after a {spec['kind']} layer with "
                                       f"activation {spec['activation']!r}")
    if layer.axis not in (-1, len(spec["output_shape"])) and list(np.atleast_1d(layer.axis)) not in (
            [-1], [len(spec["output_shape"])]):
        raise stack.refuse(name, kind, f"normalizes axis {layer.axis}; only the channel axis (-1)")
    n = spec["weight"].shape[0]
    gamma = np.asarray(layer.gamma.numpy(), np.float64) if layer.scale else np.ones(n)
    beta = np.asarray(layer.beta.numpy(), np.float64) if layer.center else np.zeros(n)
    mean = np.asarray(layer.moving_mean.numpy(), np.float64)
    var = np.asarray(layer.moving_variance.numpy(), np.float64)
    scale = gamma / np.sqrt(var + float(layer.epsilon))
    w = spec["weight"].astype(np.float64)
    spec["weight"] = (w * scale.reshape((n,) + (1,) * (w.ndim - 1))).astype(np.float32)
    b = np.zeros(n) if spec["bias"] is None else spec["bias"].astype(np.float64)
    spec["bias"] = ((b - mean) * scale + beta).astype(np.float32)


def _residual(stack: ConvStack, ins: list[_Ref], name: str, kind: str) -> _Ref:
    last = len(stack.specs) - 1
    if len(ins) != 2:
        raise stack.refuse(name, kind, f"adds {len(ins)} tensors; a residual add has 2")
    newest = [r for r in ins if r.index == last and last >= 0 and r.version == stack.versions[last]]
    if not newest:
        raise stack.refuse(name, kind, "neither input is the newest layer's current output")
    other = ins[1] if ins[0] is newest[0] else ins[0]
    spec = stack.specs[-1]
    if spec["kind"] != "conv2d" or spec.get("residual_from") is not None or any(newest[0].pads):
        raise stack.refuse(name, kind, "a residual add must follow a Conv2D (with its BN/activation), once")
    if other.index >= last or any(other.pads) or (other.index >= 0 and other.version != stack.versions[other.index]):
        raise stack.refuse(name, kind, "the skip input is not the final output of an earlier layer (or the model "
                                       "input): sparsenet keeps only those")
    if tuple(other.shape) != tuple(spec["output_shape"]):
        raise stack.refuse(name, kind, f"adds shapes {other.shape} and {spec['output_shape']}")
    spec["residual_from"] = other.index
    return stack.fold(name)


def _activation(stack: ConvStack, layer, kind: str, name: str, keras) -> str:
    if kind == "ReLU":
        max_value = None if layer.max_value is None else float(layer.max_value)
        if float(layer.negative_slope) != 0 or float(layer.threshold) != 0 or max_value not in (None, 6.0):
            raise stack.refuse(name, kind, f"max_value={layer.max_value}, negative_slope={layer.negative_slope}, "
                                           f"threshold={layer.threshold}; only ReLU() and ReLU(6.0) are")
        return "relu" if max_value is None else "relu6"
    if kind == "Softmax":
        return "softmax"
    try:
        key = keras.activations.serialize(layer.activation)
    except Exception:  # a custom callable
        key = None
    if isinstance(key, dict):
        key = None
    if key not in ACTIVATIONS:
        raise stack.refuse(name, kind, f"activation {key or getattr(layer.activation, '__name__', '?')!r}; "
                                       f"supported: {sorted(ACTIVATIONS)}")
    return ACTIVATIONS[key]
