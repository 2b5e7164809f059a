"""ONNX Runtime: the masked network as the ONNX graph sparsenet exports, run by one ``InferenceSession``."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np

from ...model import MaskedNetwork
from ...validation import check_batch
from .base import EngineDefaults, kept_weights


@dataclass(frozen=True, eq=False)
class OrtForward(EngineDefaults):
    """ONNX Runtime's CPU execution provider on the exported graph (Gemm per layer, zeros in place).

    Session options: ``intra_op_num_threads`` = numba's thread count at build time,
    ``inter_op_num_threads`` 1, sequential execution, every graph optimization on; everything else
    is ONNX Runtime's default (its worker threads spin between calls, as they do for a user).
    ``in_memory_bytes`` is the serialized model's size; the session's prepacked copy of the Gemm
    weights (MLAS' GEMM layout) is not visible from Python and not counted.
    """

    name: ClassVar[str] = "ort"
    engine: ClassVar[str] = "onnxruntime"
    requires: ClassVar[tuple[str, ...]] = ("onnxruntime", "onnx")
    pip: ClassVar[str] = "pip install onnxruntime onnx"
    dtypes: ClassVar[frozenset[np.dtype]] = frozenset({np.dtype(np.float32), np.dtype(np.float64)})
    activations: ClassVar[frozenset[str]] = frozenset(
        {"gelu", "gelu_tanh", "linear", "relu", "sigmoid", "softmax", "tanh"})
    summary: ClassVar[str] = "ONNX Runtime CPU session on the exported ONNX graph (dense Gemm, zeros kept)"
    style: ClassVar[tuple[str, str]] = ("tab:cyan", "h")
    session: Any
    n_in: int
    dtype: np.dtype
    threads: int
    model_bytes: int
    kept: int

    @classmethod
    def build(cls, masked: MaskedNetwork) -> OrtForward:
        threads = cls.check_buildable(masked)
        import onnxruntime as ort

        from ...export import onnx_model_bytes

        model = onnx_model_bytes(masked, logits=True)
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        session = ort.InferenceSession(model, options, providers=["CPUExecutionProvider"])
        return cls(session, masked.net.widths[0], masked.net.dtype, threads, len(model), kept_weights(masked))

    def __call__(self, x: np.ndarray) -> np.ndarray:
        check_batch(x, n_in=self.n_in, dtype=self.dtype)
        return self.session.run(("y",), {"x": x})[0]

    @property
    def nnz(self) -> int:
        return self.kept

    @property
    def in_memory_bytes(self) -> int:
        return self.model_bytes
