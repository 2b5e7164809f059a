"""The Keras side of recovery: an MLP that trains with masked weights, and gradual re-masking.

How pruned weights stay at exactly zero (in ``train_step`` of :func:`masked_model`'s model):
gradients are multiplied by the masks before the optimizer sees them, so Adam's moments at
pruned positions stay 0 and its update there is exactly 0; the masks are then re-applied to
the weights after every optimizer step. ``set_masks`` also zeroes the optimizer state
(momentum, Adam moments) of newly pruned weights, so nothing is carried forward that could
revive them.

Like :mod:`sparsenet._keras`, it takes ``tf``/``keras`` as arguments and imports no tensorflow.
"""

from __future__ import annotations

from ._keras import dense_stack, to_network
from .model import MaskedNetwork, Masks, Network
from .prune import prune
from .schedule import PolynomialDecay


def masked_model(keras, tf, net: Network):
    """A built Keras MLP that mirrors ``net`` and trains with masked weights (the class is built
    on demand: keras is imported lazily).

    Besides the Keras API it has ``set_masked_weights(masked)``, ``set_masks(masks)`` (zeroing
    weights and optimizer state at newly pruned positions), ``network()``, ``masks()`` and
    ``masked_network(template)``.
    """
    activations = [layer.activation for layer in net.layers]

    class _MaskedMLP(keras.Model):
        def __init__(self):
            super().__init__(name="masked_mlp")
            self.stack = dense_stack(keras, net.widths, activations, [layer.bias is not None for layer in net.layers],
                                     str(net.dtype))

        def build(self, input_shape):
            self.kernel_masks, self.bias_masks = [], []  # bias_masks: None where a layer has no bias
            for i, (dense, layer) in enumerate(zip(self.stack, net.layers)):
                dense.build((None, layer.n_in))
                self.kernel_masks.append(self.add_weight(shape=(layer.n_in, layer.n_out), initializer="ones",
                                                         trainable=False, dtype=str(net.dtype), name=f"kmask{i}"))
                self.bias_masks.append(None if layer.bias is None else self.add_weight(
                    shape=(layer.n_out,), initializer="ones", trainable=False, dtype=str(net.dtype), name=f"bmask{i}"))
            self.pairs = [(dense.kernel, k) for dense, k in zip(self.stack, self.kernel_masks)]
            self.pairs += [(dense.bias, b) for dense, b in zip(self.stack, self.bias_masks) if b is not None]

        def call(self, x):
            for dense in self.stack:
                x = dense(x)
            return x

        def train_step(self, data):
            x, y = data
            with tf.GradientTape() as tape:
                y_pred = self(x, training=True)
                loss = self.compute_loss(x=x, y=y, y_pred=y_pred, training=True)
            self._loss_tracker.update_state(loss, sample_weight=tf.shape(x)[0])
            variables = [v for v, _ in self.pairs]
            grads = tape.gradient(loss, variables)
            self.optimizer.apply_gradients([(g * m, v) for g, (v, m) in zip(grads, self.pairs)])
            for v, m in self.pairs:  # re-apply after every step: a pruned weight is exactly 0 again
                v.assign(v * m)
            return self.compute_metrics(x, y, y_pred)

        # --- numpy side ---

        def set_masked_weights(self, masked: MaskedNetwork) -> None:
            """Weights and masks from ``masked`` (sparsenet orientation in, Keras orientation inside)."""
            self.set_masks(masked.masks)
            for dense, w, b in zip(self.stack, masked.masked_weights(), masked.masked_biases()):
                dense.kernel.assign(w.T)
                if b is not None:
                    dense.bias.assign(b)

        def set_masks(self, masks: Masks) -> None:
            """New masks; weights and optimizer state at newly pruned positions become 0."""
            for kmask, bmask, keep_w, keep_b in zip(self.kernel_masks, self.bias_masks, masks.weight, masks.bias):
                kmask.assign(keep_w.T.astype(net.dtype))
                if bmask is not None:
                    bmask.assign(keep_b.astype(net.dtype))
            optimizer = getattr(self, "optimizer", None)
            slots = list(optimizer.variables) if optimizer is not None else []  # empty until the first step
            for v, m in self.pairs:
                v.assign(v * m)
                prefix = v.path.replace("/", "_") + "_"  # how Keras names a variable's optimizer slots
                for slot in slots:
                    if slot.name.startswith(prefix) and tuple(slot.shape) == tuple(v.shape):
                        slot.assign(slot * m)

        def network(self) -> Network:
            return to_network(self.stack, activations)

        def masks(self) -> Masks:
            return Masks(tuple(k.numpy().T.astype(bool) for k in self.kernel_masks),
                         tuple(None if b is None else b.numpy().astype(bool) for b in self.bias_masks))

        def masked_network(self, template: MaskedNetwork) -> MaskedNetwork:
            return MaskedNetwork(self.network(), self.masks(), template.method, template.sparsity,
                                 template.scope, template.pruned_layers)

    model = _MaskedMLP()
    model.build((None, net.widths[0]))
    return model


def gradual_callback(keras, schedule: PolynomialDecay, method: str, scope: str):
    """Recomputes the masks at the schedule's steps, from the current weights, with :func:`prune`."""

    class GradualPruning(keras.callbacks.Callback):
        def on_train_begin(self, logs=None):
            self.step = int(self.model.optimizer.iterations.numpy())  # then counted here: no sync per step

        def on_train_batch_end(self, batch, logs=None):
            self.step += 1

        def on_train_batch_begin(self, batch, logs=None):
            prune_now, sparsity = schedule(self.step)
            if not prune_now:
                return
            current = prune(self.model.network(), method, sparsity, scope)
            old = self.model.masks()
            # Pruned weights are 0, so the pruners remove them first again; the AND only guards
            # against an unlucky tie with a trained weight that is exactly 0.
            self.model.set_masks(Masks(tuple(n & o for n, o in zip(current.masks.weight, old.weight)),
                                       tuple(None if n is None else n & o
                                             for n, o in zip(current.masks.bias, old.bias))))

    return GradualPruning()

