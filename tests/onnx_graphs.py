"""Small ONNX graphs built with onnx.helper, shared by tests/test_import.py and tests/test_export.py."""

from __future__ import annotations

import numpy as np


def const(name: str, value) -> object:
    from onnx import helper, numpy_helper

    value = numpy_helper.from_array(np.asarray(value, np.float32))
    return helper.make_node("Constant", [], [name], name=name, value=value)


def graph(nodes, inits: dict, in_shape, out_width: int, opset: int = 17, ints: dict | None = None):
    """A model from ``nodes`` reading input ``x`` of shape (N, *in_shape) and writing ``y``;
    ``inits`` become float32 initializers, ``ints`` int64 ones (e.g. a Reshape's shape)."""
    from onnx import TensorProto, helper, numpy_helper

    g = helper.make_graph(nodes, "test", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", *in_shape])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", out_width])],
                          [numpy_helper.from_array(np.asarray(v, np.float32), k) for k, v in inits.items()]
                          + [numpy_helper.from_array(np.asarray(v, np.int64), k) for k, v in (ints or {}).items()])
    return helper.make_model(g, opset_imports=[helper.make_opsetid("", opset)])


def erf_gelu(x: str, y: str, prefix: str) -> list:
    """torch's GELU export before opset 20: x * (erf(x / sqrt 2) + 1) * 0.5."""
    from onnx import helper

    p = prefix
    return [const(f"{p}_sqrt2", np.sqrt(2.0)), const(f"{p}_one", 1.0), const(f"{p}_half", 0.5),
            helper.make_node("Div", [x, f"{p}_sqrt2"], [f"{p}_d"], name=f"{p}_div"),
            helper.make_node("Erf", [f"{p}_d"], [f"{p}_e"], name=f"{p}_erf"),
            helper.make_node("Add", [f"{p}_e", f"{p}_one"], [f"{p}_e1"], name=f"{p}_add"),
            helper.make_node("Mul", [x, f"{p}_e1"], [f"{p}_m"], name=f"{p}_mul"),
            helper.make_node("Mul", [f"{p}_m", f"{p}_half"], [y], name=f"{p}_half_mul")]


def tanh_gelu(x: str, y: str, prefix: str) -> list:
    """GELU's tanh form as torch exports it with approximate='tanh' before opset 20."""
    from onnx import helper

    p = prefix
    return [const(f"{p}_3", 3.0), const(f"{p}_c", 0.044715), const(f"{p}_k", np.sqrt(2 / np.pi)),
            const(f"{p}_one", 1.0), const(f"{p}_half", 0.5),
            helper.make_node("Pow", [x, f"{p}_3"], [f"{p}_x3"], name=f"{p}_pow"),
            helper.make_node("Mul", [f"{p}_x3", f"{p}_c"], [f"{p}_cx3"], name=f"{p}_mul_c"),
            helper.make_node("Add", [x, f"{p}_cx3"], [f"{p}_in"], name=f"{p}_add_in"),
            helper.make_node("Mul", [f"{p}_in", f"{p}_k"], [f"{p}_kin"], name=f"{p}_mul_k"),
            helper.make_node("Tanh", [f"{p}_kin"], [f"{p}_t"], name=f"{p}_tanh"),
            helper.make_node("Add", [f"{p}_t", f"{p}_one"], [f"{p}_t1"], name=f"{p}_add_one"),
            helper.make_node("Mul", [x, f"{p}_half"], [f"{p}_hx"], name=f"{p}_mul_half"),
            helper.make_node("Mul", [f"{p}_hx", f"{p}_t1"], [y], name=f"{p}_out")]
