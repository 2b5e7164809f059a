"""ONNX graphs (``.onnx``, e.g. from ``torch.onnx.export``) as sparsenet networks.

The graph's nodes (topologically sorted, as ONNX requires) are walked once along the one value
that flows from the graph input to its output:

- ``Gemm`` (``transA=0``, any ``transB``, ``alpha``/``beta`` folded in) and ``MatMul`` with a
  constant weight start a layer; an ``Add`` of a constant right after it is its bias;
- ``Softmax`` (last axis) sets the layer's activation, and so does a run of elementwise nodes
  that reads the layer's output, constants and itself only: ``Relu``, ``Tanh``, ``Sigmoid``,
  ``Gelu`` (opset 20; ``approximate="tanh"`` is ``gelu_tanh``), or torch's GELU before opset 20
  (``Div`` by sqrt(2), ``Erf``, ``Add`` 1, ``Mul`` by x and 0.5; its tanh form with ``Pow``). Such
  a run is evaluated on probe values in float64 and named by the activation it equals (a SiLU,
  ``x * Sigmoid(x)``, equals none and is refused);
- ``Flatten``, ``Reshape`` to ``(batch, features)`` (constant shape), ``Identity`` and ``Dropout``
  are what they are at inference; ``Constant`` nodes feed the others.

Anything else (another op, a branch, a weight computed at run time) is refused by node name and op.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..activations import ACTIVATIONS
from ..errors import FileFormatError
from ._stack import Stack

ELEMENTWISE = ("Add", "Sub", "Mul", "Div", "Pow", "Sqrt", "Erf", "Tanh", "Sigmoid", "Relu", "Exp", "Neg", "Gelu")
# activations an elementwise run may compute, tried in this order on probe values
RUN_ACTIVATIONS = ("relu", "tanh", "sigmoid", "gelu", "gelu_tanh", "linear")
PROBE = np.linspace(-6.0, 6.0, 97)


def _onnx():
    try:
        import onnx
    except ImportError:
        raise ImportError("reading ONNX models needs the onnx package: pip install 'sparsenet[onnx]'") from None
    return onnx


def load(path: str | Path):
    """``(model, stack, input_shape)`` for the ONNX file at ``path``."""
    onnx = _onnx()
    path = Path(path)
    try:
        model = onnx.load(str(path))
        onnx.checker.check_model(model)
    except Exception as exc:  # protobuf decode errors and checker failures: not a usable ONNX file
        raise FileFormatError(path, f"cannot be read as an ONNX model ({type(exc).__name__}: "
                                    f"{str(exc).splitlines()[0] if str(exc) else ''})") from None
    graph = model.graph
    consts = {t.name: onnx.numpy_helper.to_array(t) for t in graph.initializer}
    inputs = [v for v in graph.input if v.name not in consts]
    if len(inputs) != 1 or len(graph.output) != 1:
        raise FileFormatError(path, f"the graph has {len(inputs)} inputs and {len(graph.output)} outputs; "
                                    "sparsenet imports one of each")
    dims = [d.dim_value if d.HasField("dim_value") else None for d in inputs[0].type.tensor_type.shape.dim]
    if len(dims) < 2 or any(d is None or d <= 0 for d in dims[1:]):
        raise FileFormatError(path, f"input {inputs[0].name!r} has shape {dims}; sparsenet imports an input of "
                                    "shape (batch, features...) with fixed feature dimensions")
    stack = Stack(str(path))
    _walk(stack, list(graph.node), consts, inputs[0].name, graph.output[0].name, tuple(dims[1:]), onnx)
    return model, stack, tuple(dims[1:])


def _walk(stack: Stack, nodes: list, consts: dict, cur: str, output: str, shape: tuple, onnx) -> None:
    """Follow ``cur`` through ``nodes`` to ``output``, adding layers to ``stack``."""
    i = 0
    after_product = False  # the last node on the chain was a matrix product or its bias: an Add is a bias
    while i < len(nodes):
        node = nodes[i]
        name, op = node.name or f"#{i}", node.op_type
        attrs = {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}
        if op == "Constant":
            consts[node.output[0]] = _constant(stack, name, attrs, onnx)
            i += 1
            continue
        ins = [x for x in node.input if x]
        live = [x for x in ins if x not in consts]
        if live != [cur] and not (op in ELEMENTWISE and set(live) == {cur}):
            raise stack.refuse(name, f"ONNX {op}", f"inputs {list(node.input)}: the graph is not one chain of "
                                                   f"layers along {cur!r}, or a weight is computed at run time")
        if op in ("Gemm", "MatMul"):
            if len(shape) != 1:
                raise stack.refuse(name, f"ONNX {op}", f"applied to a rank-{len(shape)} sample of shape {shape}; "
                                                       "add a Flatten before it")
            weight, bias = _linear(stack, name, op, ins, consts, attrs, cur)
            stack.linear(name, f"ONNX {op}", weight, bias)
            shape, after_product = (weight.shape[0],), True
        elif op == "Add" and after_product and len(live) == 1:
            stack.add_bias(name, "ONNX Add", consts[next(x for x in ins if x in consts)])
        elif op in ELEMENTWISE:
            j = _run_end(nodes, i, cur, consts)
            run = nodes[i:j]
            kind = "ONNX " + "/".join(n.op_type for n in run)
            stack.activation(name if len(run) == 1 else f"{name}..{run[-1].name}", kind,
                             _identify(stack, run, consts, cur, onnx))
            node, i, after_product = run[-1], j - 1, False
        elif op == "Softmax":
            axis = attrs.get("axis", -1)
            if axis not in (-1, 1):
                raise stack.refuse(name, "ONNX Softmax", f"softmax over axis {axis}; only over the features")
            stack.activation(name, "ONNX Softmax", "softmax")
            after_product = False
        elif op in ("Identity", "Dropout"):
            pass
        elif op in ("Flatten", "Reshape"):
            shape = _reshape(stack, name, op, ins, consts, attrs, shape)
        else:
            raise stack.refuse(name, f"ONNX {op}", "Shape/Gather nodes come from a reshape computed at run time; "
                                                   "export with nn.Flatten()" if op in ("Shape", "Gather") else "")
        cur = node.output[0]
        i += 1
    if cur != output:
        raise FileFormatError(stack.path, f"the graph's output {output!r} is not computed from its input along "
                                          f"one chain (the chain ends at {cur!r})")


def _constant(stack: Stack, name: str, attrs: dict, onnx) -> np.ndarray:
    if "value" in attrs:
        return onnx.numpy_helper.to_array(attrs["value"])
    for key in ("value_float", "value_int"):
        if key in attrs:
            return np.asarray(attrs[key])
    for key in ("value_floats", "value_ints"):
        if key in attrs:
            return np.asarray(list(attrs[key]))
    raise stack.refuse(name, "ONNX Constant", f"attributes {sorted(attrs)}")


def _linear(stack: Stack, name: str, op: str, ins: list, consts: dict, attrs: dict, cur: str):
    """``(weight (n_out, n_in), bias or None)`` of a Gemm or MatMul node."""
    if ins[0] != cur or ins[1] not in consts:
        raise stack.refuse(name, f"ONNX {op}", "the weight must be a constant second input")
    w = np.asarray(consts[ins[1]], np.float64)
    if op == "MatMul":
        return w.T, None
    if attrs.get("transA", 0):
        raise stack.refuse(name, "ONNX Gemm", "transA=1 (the batch must be the input's first axis)")
    weight = (w if attrs.get("transB", 0) else w.T) * float(attrs.get("alpha", 1.0))
    if len(ins) < 3:
        return weight, None
    if ins[2] not in consts:
        raise stack.refuse(name, "ONNX Gemm", "the bias C must be a constant")
    return weight, np.asarray(consts[ins[2]], np.float64) * float(attrs.get("beta", 1.0))


def _run_end(nodes: list, i: int, cur: str, consts: dict) -> int:
    """The end of the run of elementwise nodes from ``i`` that read only ``cur``, each other and constants."""
    inside = {cur}
    j = i
    while j < len(nodes) and nodes[j].op_type in ELEMENTWISE:
        live = [x for x in nodes[j].input if x and x not in consts]
        if not live or not set(live) <= inside:
            break
        inside.add(nodes[j].output[0])
        j += 1
    return j


def _identify(stack: Stack, run: list, consts: dict, cur: str, onnx) -> str:
    """The activation a run of elementwise nodes computes, evaluated on :data:`PROBE` in float64."""
    values = {cur: PROBE.copy()}
    described = "/".join(f"{n.op_type}" for n in run)
    for node in run:
        args = []
        for x in node.input:
            v = values.get(x, consts.get(x))
            if x in consts and np.size(v) != 1:
                raise stack.refuse(node.name, f"ONNX {node.op_type}", "a non-scalar constant inside an activation")
            args.append(np.asarray(v, np.float64).reshape(()) if x in consts else v)
        attrs = {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}
        values[node.output[0]] = _elementwise(node.op_type, args, attrs)
    out = values[run[-1].output[0]]
    for act in RUN_ACTIVATIONS:
        if np.allclose(out, ACTIVATIONS[act](PROBE.copy()), rtol=1e-5, atol=1e-6):
            return act
    raise stack.refuse(run[0].name, f"ONNX {described}", "these elementwise nodes compute no supported activation")


def _elementwise(op: str, args: list, attrs: dict) -> np.ndarray:
    from scipy import special

    if op == "Gelu":
        return ACTIVATIONS["gelu" if attrs.get("approximate", b"none") in (b"none", "none") else "gelu_tanh"](
            np.array(args[0]))
    unary = {"Sqrt": np.sqrt, "Erf": special.erf, "Tanh": np.tanh, "Sigmoid": special.expit, "Exp": np.exp,
             "Neg": np.negative, "Relu": lambda v: np.maximum(v, 0.0)}
    if op in unary:
        return unary[op](args[0])
    binary = {"Add": np.add, "Sub": np.subtract, "Mul": np.multiply, "Div": np.divide, "Pow": np.power}
    return binary[op](args[0], args[1])


def _reshape(stack: Stack, name: str, op: str, ins: list, consts: dict, attrs: dict, shape: tuple) -> tuple:
    n = int(np.prod(shape))
    if op == "Flatten":
        if attrs.get("axis", 1) != 1:
            raise stack.refuse(name, "ONNX Flatten", f"axis={attrs['axis']}; only axis=1 (keep the batch)")
        return (n,)
    if len(ins) < 2 or ins[1] not in consts:
        raise stack.refuse(name, "ONNX Reshape", "a shape computed at run time; export with nn.Flatten()")
    target = [int(d) for d in np.asarray(consts[ins[1]]).reshape(-1)]
    if len(target) != 2 or target[1] not in (-1, n) or target[0] not in (-1, 0) and target[1] == -1:
        raise stack.refuse(name, "ONNX Reshape", f"reshapes to {target}; only to (batch, {n})")
    return (n,)


def reference(model):
    """The ``onnx`` package's reference evaluator: float32 batch -> the graph's output."""
    _onnx()
    from onnx.reference import ReferenceEvaluator

    evaluator = ReferenceEvaluator(model)
    feed = next(v.name for v in model.graph.input if v.name not in {t.name for t in model.graph.initializer})
    return lambda x: evaluator.run(None, {feed: x})[0]
