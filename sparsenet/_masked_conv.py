"""The Keras side of recovery for conv networks: the trained Keras model itself, batch norm and
all, trained with masked kernels; the network is imported (BN folded) after every change.

The masks belong to the imported network (:class:`~sparsenet.model.MaskedNetwork`, in sparsenet's
orientation); each pruned layer's mask is laid onto the Keras layer it was imported from
(``ImportedModel.layer_names``: the convolution or Dense first, then the BN folded into it), its
kernel transposed to Keras' orientation (conv ``(C_out, kh, kw, C_in)`` -> ``(kh, kw, C_in, C_out)``,
depthwise ``(C, kh, kw)`` -> ``(kh, kw, C, 1)``, dense ``(out, in)`` -> ``(in, out)``). Batch norm
stays trainable. Folding multiplies each output channel by ``gamma / sqrt(var + eps)``, so a
kernel entry that is exactly 0 in Keras is exactly 0 in the imported network. For unit (filter)
pruning the BN's ``gamma`` and ``beta`` of a removed channel are masked too, so its folded bias
is exactly 0 as well (``(b - mean) * 0 + 0``), and a Keras bias, where the layer has one.

Pruned weights stay 0 as in :mod:`sparsenet._masked_mlp`: gradients masked before the
optimizer, masks re-applied after every step, optimizer slots of newly pruned entries zeroed.
Gradual pruning ranks the weights of the network as it would be imported at that step (BN folded
with the current moving statistics), the same ranking one-shot pruning of the trained network
uses.

Takes ``tf``/``keras`` as arguments and imports no tensorflow.
"""

from __future__ import annotations

import numpy as np

from ._masked_mlp import gradual_callback  # the masked model exposes network(), masks(), set_masks() alike
from .importers.keras_conv import read_conv
from .model import MaskedNetwork, Masks, Network
from .prune import PRUNERS
from .schedule import PolynomialDecay


def to_keras(kind: str, keep: np.ndarray) -> np.ndarray:
    """A sparsenet weight mask (or weight) of layer ``kind`` in Keras' kernel orientation."""
    if kind == "conv2d":
        return keep.transpose(1, 2, 3, 0)
    if kind == "depthwise_conv2d":
        return keep.transpose(1, 2, 0)[..., None]
    if kind == "dense":
        return keep.T
    raise ValueError(f"layer kind {kind!r} has no Keras kernel to mask")


def from_keras(kind: str, keep: np.ndarray) -> np.ndarray:
    """The inverse of :func:`to_keras`."""
    if kind == "conv2d":
        return keep.transpose(3, 0, 1, 2)
    if kind == "depthwise_conv2d":
        return keep[..., 0].transpose(2, 0, 1)
    if kind == "dense":
        return keep.T
    raise ValueError(f"layer kind {kind!r} has no Keras kernel to mask")


def masked_conv_model(keras, tf, model, template: MaskedNetwork, layer_names, input_shape: tuple):
    """``model`` (the Keras model ``template.net`` was imported from) wrapped to train with masks.

    Besides the Keras API the wrapper has ``set_masks(masks)``, ``network()`` (the current import,
    BN folded), ``masks()`` and ``masked_network()``. ``layer_names``: per sparsenet layer, the
    Keras layers it was imported from. Raises ValueError if ``model`` does not import to
    ``template.net``'s layers (another model's file).
    """
    net = template.net
    current = read_conv(model, "<the model being recovered>", input_shape, keras).network()
    if len(current.layers) != len(net.layers) or any(
            a.kind != b.kind or a.weight.shape != b.weight.shape or not np.allclose(a.weight, b.weight, atol=1e-6)
            for a, b in zip(current.layers, net.layers)):
        raise ValueError("the Keras model given for recovery does not import to the network being recovered; "
                         "pass the .keras file that network was imported from")
    structured = PRUNERS[template.method].structured
    by_name = {layer.name: layer for layer in model.layers}
    pruned = tuple(template.pruned_layers)

    class _MaskedConv(keras.Model):
        def __init__(self):
            super().__init__(name="masked_conv")
            self.inner = model

        def build(self, input_shape):
            # per pruned layer: the kernel's mask, and for unit pruning the channel mask (bias, BN)
            self.kernel_masks, self.unit_masks, self.pairs = {}, {}, []
            for i in pruned:
                names = layer_names[i]
                keras_layer = by_name[names[0]]
                shape = tuple(keras_layer.kernel.shape)
                self.kernel_masks[i] = self.add_weight(shape=shape, initializer="ones", trainable=False,
                                                       dtype="float32", name=f"kmask{i}")
                self.pairs.append((keras_layer.kernel, self.kernel_masks[i]))
                if not structured:
                    continue
                n = shape[-1] if net.layers[i].kind != "depthwise_conv2d" else shape[2]
                self.unit_masks[i] = self.add_weight(shape=(n,), initializer="ones", trainable=False,
                                                     dtype="float32", name=f"umask{i}")
                if getattr(keras_layer, "use_bias", False):
                    self.pairs.append((keras_layer.bias, self.unit_masks[i]))
                for bn in (by_name[n] for n in names[1:]):
                    if isinstance(bn, keras.layers.BatchNormalization):
                        if not (bn.scale and bn.center):
                            raise NotImplementedError(f"unit pruning needs gamma and beta in {bn.name!r} to zero "
                                                      "a removed channel; it has scale or center off")
                        self.pairs += [(bn.gamma, self.unit_masks[i]), (bn.beta, self.unit_masks[i])]
            self.mask_of = {id(v): m for v, m in self.pairs}

        def call(self, x, training=False):
            return self.inner(x, training=training)

        def train_step(self, data):
            x, y = data
            with tf.GradientTape() as tape:
                y_pred = self(x, training=True)
                loss = self.compute_loss(x=x, y=y, y_pred=y_pred, training=True)
            self._loss_tracker.update_state(loss, sample_weight=tf.shape(x)[0])
            variables = self.inner.trainable_variables
            grads = tape.gradient(loss, variables)
            self.optimizer.apply_gradients([(g * self.mask_of[id(v)] if id(v) in self.mask_of else g, v)
                                            for g, v in zip(grads, variables)])
            for v, m in self.pairs:  # re-apply after every step: a pruned weight is exactly 0 again
                v.assign(v * m)
            return self.compute_metrics(x, y, y_pred)

        # --- numpy side ---

        def set_masks(self, masks: Masks) -> None:
            """New masks; weights and optimizer state at newly pruned positions become 0."""
            for i in pruned:
                self.kernel_masks[i].assign(to_keras(net.layers[i].kind, masks.weight[i]).astype(np.float32))
                if structured:
                    self.unit_masks[i].assign(masks.bias[i].astype(np.float32) if masks.bias[i] is not None
                                              else masks.weight[i].reshape(len(masks.weight[i]), -1).any(axis=1))
            optimizer = getattr(self, "optimizer", None)
            slots = list(optimizer.variables) if optimizer is not None else []  # empty until the first step
            for v, m in self.pairs:
                v.assign(v * m)
                prefix = v.path.replace("/", "_") + "_"  # how Keras names a variable's optimizer slots
                for slot in slots:
                    if slot.name.startswith(prefix) and tuple(slot.shape) == tuple(v.shape):
                        slot.assign(slot * m)

        def network(self) -> Network:
            return read_conv(self.inner, "<the model being recovered>", input_shape, keras).network()

        def masks(self) -> Masks:
            weight, bias = list(template.masks.weight), list(template.masks.bias)
            for i in pruned:
                weight[i] = from_keras(net.layers[i].kind, self.kernel_masks[i].numpy()).astype(bool)
                if structured and bias[i] is not None:
                    bias[i] = self.unit_masks[i].numpy().astype(bool)
            return Masks(tuple(weight), tuple(bias))

        def masked_network(self, net: Network | None = None) -> MaskedNetwork:
            return MaskedNetwork(self.network() if net is None else net, self.masks(), template.method,
                                 template.sparsity, template.scope, template.pruned_layers)

    wrapper = _MaskedConv()
    wrapper.build((None, *input_shape))
    wrapper.set_masks(template.masks)
    return wrapper


def fit_conv(masked: MaskedNetwork, dataset, config, schedule: PolynomialDecay | None, keras_model,
             progress: bool) -> tuple[MaskedNetwork, dict]:
    """Train the Keras model ``keras_model`` (the file ``masked.net`` was imported from) with
    ``masked``'s masks (fixed, or following ``schedule``), re-estimate its batch norm statistics
    (:func:`sparsenet.train_conv.reestimate_bn`), import it again (BN folded, checked against Keras)
    and return the masked network with a manifest. ``dataset`` has ``image_shape`` (NHWC)."""
    import dataclasses
    import time
    from pathlib import Path

    from . import _keras
    from .importers import check_import
    from .importers.keras import reference
    from .train_conv import reestimate_bn

    shape = getattr(dataset, "image_shape", None)
    if shape is None or int(np.prod(shape)) != masked.net.widths[0]:
        raise ValueError(f"a conv network taking {masked.net.input_shape} needs an image dataset of that shape; "
                         f"{dataset.name} has {getattr(dataset, 'image_shape', dataset.x_train.shape[1:])}")
    if keras_model is None or not Path(keras_model).is_file():
        raise ValueError(f"recovering a conv network trains its Keras model (BN unfolded): pass keras_model=, the "
                         f".keras file the network was imported from (found {keras_model!r})")
    tf, keras = _keras.import_tf()
    threads = _keras.configure_tf(tf, keras, config.seed)
    x = dataset.x_train[:config.train_samples].reshape(-1, *shape)
    y = dataset.y_train[:config.train_samples]
    total_steps = config.epochs * config.steps_per_epoch()

    model = keras.models.load_model(keras_model, compile=False)
    names = read_conv(model, str(keras_model), shape, keras).names
    wrapper = masked_conv_model(keras, tf, model, masked, names, shape)
    logits = masked.net.layers[-1].activation != "softmax"
    lr = keras.optimizers.schedules.CosineDecay(config.learning_rate, decay_steps=total_steps, alpha=0.0)
    optimizer = (keras.optimizers.Adam(lr) if config.optimizer == "adam"
                 else keras.optimizers.SGD(lr, momentum=0.9, nesterov=True))
    wrapper.compile(optimizer=optimizer, loss=keras.losses.SparseCategoricalCrossentropy(from_logits=logits),
                    metrics=["accuracy"])
    batches = (tf.data.Dataset.from_tensor_slices((x, y)).shuffle(len(x), seed=config.seed)
               .batch(config.batch_size).prefetch(2))
    callbacks = [_keras.epoch_log(keras, config.epochs, progress)]
    if schedule is not None:
        callbacks.append(gradual_callback(keras, schedule, masked.method, masked.scope))
    start = time.perf_counter()
    wrapper.fit(batches, epochs=config.epochs, verbose=0, shuffle=False, callbacks=callbacks)  # shuffled above
    seconds = time.perf_counter() - start
    bn_batches = min(50, max(1, len(x) // 64))
    reestimate_bn(keras, model, x, config.seed, batches=bn_batches)
    for v, m in wrapper.pairs:  # BN re-estimation leaves gamma/beta alone; kept as a guard
        v.assign(v * m)

    net = wrapper.network()
    check_import(net, reference(model), shape, str(keras_model), config.seed)
    recovered = wrapper.masked_network(net)
    # Keras' own evaluation of the same weights (the import is checked equal above): a full test
    # set through sparsenet's dense format takes ~45 s for width 1.0 on 2 cores, Keras ~10 s
    _, accuracy = wrapper.evaluate(dataset.x_test.reshape(-1, *shape), dataset.y_test, batch_size=500, verbose=0)
    accuracy = float(accuracy)
    history = callbacks[0].history
    return recovered, {
        "dataset": dataset.name, "method": masked.method, "scope": masked.scope,
        "sparsity": masked.sparsity, "achieved_sparsity": recovered.achieved_sparsity(),
        "epochs": config.epochs, "steps": total_steps, "config": dataclasses.asdict(config),
        "optimizer": (f"{'Adam' if config.optimizer == 'adam' else 'SGD, Nesterov momentum 0.9'}, learning rate "
                      f"{config.learning_rate:g} cosine-decayed to 0 over {total_steps} steps; batch norm trained, "
                      f"its statistics re-estimated on {bn_batches} batches after training, then folded"),
        "test_accuracy": accuracy, "final_loss": history[-1]["loss"], "train_accuracy": history[-1]["accuracy"],
        "epoch_seconds": [round(h["seconds"], 3) for h in history], "train_seconds": round(seconds, 3),
        "threads": threads, "data_source": dataset.source, "keras_model": str(keras_model),
        "versions": {"tensorflow": tf.__version__, "keras": keras.__version__, "numpy": np.__version__},
    }
