"""Other inference engines as sparsenet formats: what a user would otherwise deploy a pruned network on,
timed in the same run and behind the same correctness gate as sparsenet's own formats.

``ort``
    ONNX Runtime (package ``onnxruntime``): the masked network exported as ONNX
    (:func:`sparsenet.export.onnx_model_bytes`, logits out), one ``InferenceSession``.
``tflite``
    TensorFlow Lite through the LiteRT interpreter (package ``ai-edge-litert``) with its default
    XNNPACK delegate, float32; converted from a Keras model by ``tf.lite.TFLiteConverter``
    (package ``tensorflow``).
``torch_dense``, ``torch_csr``
    PyTorch on the CPU (package ``torch``): a ``torch.nn.functional.linear`` chain on dense
    weights, and ``torch.sparse_csr`` weights multiplied by ``torch.sparse.mm``.

Every engine runs with the thread count numba has when it is built (``numba.get_num_threads()``,
set for a run by ``bench/runtime.py``), returns logits like every format (an output softmax is left
out) and counts the numpy-to-engine conversion of the input inside its call: it is what a user pays.
``pip install 'sparsenet[engines]'`` installs them all. An engine whose package is missing stays in
:data:`sparsenet.formats.FORMATS` with ``available()`` False: :func:`sparsenet.formats.formats_for`
leaves it out and :func:`sparsenet.convert` names the package and the pip command.

Neural Magic's DeepSparse is not here: its last release (1.8.0) requires numpy < 2 and cannot be
installed beside sparsenet's numpy 2; :func:`unavailable_engines` says so in every report.
"""

from __future__ import annotations

from .base import EngineDefaults
from .ort import OrtForward
from .tflite import TFLiteForward, tflite_model_bytes
from .torch_cpu import TorchCSRForward, TorchDenseForward

ENGINES: tuple[type[EngineDefaults], ...] = (OrtForward, TFLiteForward, TorchDenseForward, TorchCSRForward)

# Engines that cannot be offered at all, with the reason a report prints.
NOT_INSTALLABLE = {
    "deepsparse": "DeepSparse 1.8.0 (its last release) requires numpy < 2; sparsenet needs numpy 2",
}


def unavailable_engines() -> dict[str, str]:
    """``{name: reason}`` for every engine this installation cannot run: the registered ones whose
    package does not import (reason: the package and the pip command) and the ones that cannot be
    installed beside sparsenet at all (DeepSparse)."""
    missing = {cls.name: cls.unavailable_reason() for cls in ENGINES if not cls.available()}
    return {**missing, **NOT_INSTALLABLE}


__all__ = ["ENGINES", "NOT_INSTALLABLE", "EngineDefaults", "OrtForward", "TFLiteForward", "TorchCSRForward",
           "TorchDenseForward", "tflite_model_bytes", "unavailable_engines"]
