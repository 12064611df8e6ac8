"""Float islands: body ops ``mlir_quantize`` left float in a streaming graph while the same op is
int8 in the non-stream reference, made int8 again with the reference's weights and scales
(``repair_float_islands``), and the check that finds them (``float_body_ops``)."""
from __future__ import annotations

from collections import defaultdict
from typing import Iterable

import numpy as np

from kwsnb.tflite import runtime
from kwsnb.tflite.flatbuffer import Graph, tensor_keys

# Ops that only reshape: int8 in, the same parameters out.
RESHAPING_OPS = {"RESHAPE", "EXPAND_DIMS", "SQUEEZE"}


def float_body_ops(content: bytes, front_end: Iterable[str] = ()) -> list[str]:
    """``OP:output name`` of every op outside ``front_end`` writing a float tensor, except
    DEQUANTIZE (float outputs and states) and shape arithmetic."""
    g = Graph.read(content)
    graph = g.graph
    front_end = set(front_end)
    schema = runtime.tflite_schema()
    found = []
    for op in graph.operators:
        name = g.kind(op)
        outputs = [graph.tensors[o] for o in op.outputs]
        if name == "DEQUANTIZE" or any((t.name or b"").decode() in front_end for t in outputs):
            continue
        if any(t.type == schema.TensorType.FLOAT32 for t in outputs):
            found.append(f"{name}:{(outputs[0].name or b'').decode()}")
    return found


def repair_float_islands(content: bytes, reference: bytes,
                         front_end: Iterable[str] = ()) -> tuple[bytes, list[str]]:
    """Makes int8 the body ops ``mlir_quantize`` left float in ``content`` (a DEQUANTIZE, a
    float kernel with float weights, a QUANTIZE) when the same op (same key, same operator) is
    int8 in ``reference``: the op reads the int8 tensor, takes the reference op's int8
    weights and bias and writes its output with the reference's scale.

    The quantizer (TF 2.21) does this to some streaming graphs: a residual shortcut reading a
    tensor that also feeds a ring buffer (tc_resnet's strided 1x1 shortcut convolutions,
    xception's shortcut Dense layers) stays float, so it rounds differently from the
    non-stream model. Returns the model and the repaired ops.
    """
    schema = runtime.tflite_schema()
    INT8, FLOAT32 = schema.TensorType.INT8, schema.TensorType.FLOAT32
    g, rg = Graph.read(content), Graph.read(reference)
    model, graph, ref_model, ref_graph = g.model, g.graph, rg.model, rg.graph
    keys, ref_keys = tensor_keys(content), tensor_keys(reference)
    ref_ops = {}
    for op in ref_graph.operators:
        for o in op.outputs:
            if ref_keys[o] is not None:
                ref_ops[(ref_keys[o], rg.kind(op))] = op
                ref_ops.setdefault((ref_keys[o].split(";")[0], rg.kind(op)), op)
    front_end = set(front_end)
    producer = {o: op for op in graph.operators for o in op.outputs}
    # An op code (builtin, version) already used by an int8 op, for each builtin.
    int8_codes = {}
    for op in graph.operators:
        if op.outputs and graph.tensors[op.outputs[0]].type == INT8:
            int8_codes.setdefault(g.kind(op), op.opcodeIndex)

    def copy_quantization(tensor, source):
        q = schema.QuantizationParametersT()
        sq = source.quantization
        q.scale = None if sq is None or sq.scale is None else np.array(sq.scale)
        q.zeroPoint = None if sq is None or sq.zeroPoint is None else np.array(sq.zeroPoint)
        q.quantizedDimension = 0 if sq is None else sq.quantizedDimension
        tensor.quantization = q

    def add_constant(source):
        buffer = schema.BufferT()
        data = ref_model.buffers[source.buffer].data
        buffer.data = np.array(data, dtype=np.uint8)
        model.buffers.append(buffer)
        tensor = schema.TensorT()
        tensor.name, tensor.type = source.name, source.type
        tensor.shape = np.array(source.shape, dtype=np.int32)
        tensor.buffer = len(model.buffers) - 1
        copy_quantization(tensor, source)
        graph.tensors.append(tensor)
        return len(graph.tensors) - 1

    repaired = []
    changed = True
    while changed:
        changed = False
        for op in graph.operators:
            name = g.kind(op)
            if name in ("QUANTIZE", "DEQUANTIZE") or len(op.outputs) != 1:
                continue
            out = graph.tensors[op.outputs[0]]
            if out.type != FLOAT32 or (out.name or b"").decode() in front_end:
                continue
            key = keys[op.outputs[0]] or ""
            ref_op = ref_ops.get((key, name)) or ref_ops.get((key.split(";")[0], name))
            if ref_op is None and name in RESHAPING_OPS:
                ref_op = op  # moves values: int8 in, the same parameters out
            if ref_op is None or len(ref_op.inputs) != len(op.inputs):
                continue
            if ref_op is op:
                data = op.inputs[0]
                source = producer.get(data)
                if graph.tensors[data].type == INT8:
                    ref_out = graph.tensors[data]
                elif source is not None and g.kind(source) == "DEQUANTIZE" \
                        and graph.tensors[source.inputs[0]].type == INT8:
                    ref_out = graph.tensors[source.inputs[0]]
                else:
                    continue
            else:
                ref_out = ref_graph.tensors[ref_op.outputs[0]]
            if ref_out.type != INT8:
                continue
            inputs, ok = [], True
            for i, r in zip(op.inputs, ref_op.inputs):
                if i < 0:
                    inputs.append(i)
                    continue
                tensor = graph.tensors[i]
                source = producer.get(i)
                if g.is_constant(i):
                    if tensor.type == FLOAT32 and ref_op is op:
                        ok = False
                        break
                    if tensor.type == FLOAT32:
                        inputs.append(add_constant(ref_graph.tensors[r]))
                    else:
                        inputs.append(i)
                elif tensor.type == INT8:
                    inputs.append(i)
                elif source is not None and g.kind(source) == "DEQUANTIZE" \
                        and graph.tensors[source.inputs[0]].type == INT8:
                    inputs.append(source.inputs[0])
                else:
                    ok = False
                    break
            if not ok:
                continue
            op.inputs = np.array(inputs, dtype=np.int32)
            out.type = INT8
            copy_quantization(out, ref_out)
            op.opcodeIndex = int8_codes.get(name, op.opcodeIndex)
            repaired.append(f"{name}:{(out.name or b'').decode()}")
            changed = True
    if not repaired:
        return content, []
    # A QUANTIZE after a repaired op with the same parameters is now a no-op: bypass it.
    consumers = defaultdict(list)
    for op in graph.operators:
        for i in op.inputs:
            consumers[i].append(op)
    dead = set()
    for op in graph.operators:
        if g.kind(op) != "QUANTIZE":
            continue
        src, dst = graph.tensors[op.inputs[0]], graph.tensors[op.outputs[0]]
        same = (src.type == INT8 and dst.type == INT8 and src.quantization is not None
                and dst.quantization is not None
                and np.array_equal(src.quantization.scale, dst.quantization.scale)
                and np.array_equal(src.quantization.zeroPoint, dst.quantization.zeroPoint))
        if same and op.outputs[0] not in set(graph.outputs):
            for user in consumers[op.outputs[0]]:
                user.inputs = np.array([op.inputs[0] if i == op.outputs[0] else i
                                        for i in user.inputs], dtype=np.int32)
            dead.add(id(op))
    # Ops whose outputs nobody reads any more (DEQUANTIZE before a repaired op, the bypassed
    # QUANTIZE), repeatedly.
    while True:
        used = {i for op in graph.operators if id(op) not in dead for i in op.inputs}
        used |= set(graph.outputs)
        newly = {id(op) for op in graph.operators if id(op) not in dead
                 and not any(o in used for o in op.outputs)}
        if not newly:
            break
        dead |= newly
    graph.operators = [op for op in graph.operators if id(op) not in dead]
    # Every float op must still read float tensors (a reshape made int8 whose float consumer
    # could not be repaired would break the model): otherwise give up, keep the model as is.
    for op in graph.operators:
        if g.kind(op) in ("QUANTIZE", "DEQUANTIZE") or not op.outputs:
            continue
        if graph.tensors[op.outputs[0]].type != FLOAT32:
            continue
        if any(i >= 0 and graph.tensors[i].type == INT8 for i in op.inputs):
            return content, []
    return g.pack(), repaired
