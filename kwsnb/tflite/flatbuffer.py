"""Graph rewrites of a converted TFLite flatbuffer that leave every output bit-identical.

The converter runs each Keras Conv1D / MaxPooling1D / DepthwiseConv1D as a 2-D op on
``[1, 1, time, channels]`` between two RESHAPEs (``[1, time, channels]`` -> ``[1, 1, time,
channels]`` and back), so a kwsnb model spends a third of its ops on RESHAPE (inception's
features-in int8 model: 24 of 65). ``fewer_reshapes`` keeps the time layers' tensors 4-D from
one 2-D op to the next instead: the ops in between (FULLY_CONNECTED with ``keep_num_dims``,
PAD, CONCATENATION, ADD, ...) read and write ``[1, 1, time, channels]``, which changes no
number they compute, and the RESHAPE pairs between them go. ``drop_identity_ops`` removes ops
that copy their input (a 1x1 MAX_POOL_2D with stride 1: svdf_resnet's last pool).

``pack_shared`` serializes a model writing equal vectors, quantization tables and operator
options once (``kwsnb.tflite.convert.compact_flatbuffer`` packs with it).

Only ``kwsnb.tflite.runtime`` is needed. The result is packed without sharing; run
``kwsnb.tflite.convert.compact_flatbuffer`` after it to drop the tensors and buffers no op reads any
more (the old RESHAPE shapes, 3-D paddings).
"""
from __future__ import annotations

from collections import defaultdict

import numpy as np

from kwsnb.tflite.runtime import TFLITE_IDENTIFIER, opcode_names, tflite_schema

# Ops that compute the same numbers on [1, 1, T, C] as on [1, T, C], given the edits in
# _lift_op (PAD gets a [0, 0] row for the new axis, CONCATENATION a positive axis + 1).
# FULLY_CONNECTED only with keep_num_dims (checked in _liftable).
ELEMENTWISE = {"ADD", "SUB", "MUL", "RELU", "RELU6", "RELU_N1_TO_1", "LOGISTIC", "TANH",
               "HARD_SWISH", "LEAKY_RELU", "QUANTIZE", "DEQUANTIZE", "ABS", "NEG", "MAXIMUM",
               "MINIMUM"}
# MEAN (keep_dims false, not over the batch) reads a lifted tensor and reduces the new axis too.
LIFTABLE = ELEMENTWISE | {"FULLY_CONNECTED", "PAD", "PADV2", "CONCATENATION", "MEAN"}


class Graph:
    """The main subgraph of a ``ModelT`` with producers, consumers and constants."""

    def __init__(self, model):
        """``model``: a ``ModelT`` (``Graph.read`` unpacks one from bytes)."""
        self.model = model
        self.graph = model.subgraphs[0]
        names = opcode_names()
        self.kinds = [names.get(code, f"BUILTIN_{code}") for code in
                      (max(c.builtinCode, c.deprecatedBuiltinCode) for c in model.operatorCodes)]
        # Tensors the outside world names: graph inputs/outputs and signature tensors.
        self.fixed = set(int(i) for i in self.graph.inputs) | set(int(i) for i in self.graph.outputs)
        for signature in model.signatureDefs or []:
            if signature.subgraphIndex == 0:
                self.fixed.update(t.tensorIndex for t in (signature.inputs or [])
                                  + (signature.outputs or []))

    @classmethod
    def read(cls, content: bytes) -> "Graph":
        """The model in ``content`` (a .tflite flatbuffer), unpacked for editing."""
        return cls(tflite_schema().ModelT.InitFromPackedBuf(content, 0))

    def kind(self, op) -> str:
        return self.kinds[op.opcodeIndex]

    def is_constant(self, index: int) -> bool:
        tensor = self.graph.tensors[index]
        data = self.model.buffers[tensor.buffer].data if tensor.buffer < len(self.model.buffers) \
            else None
        return data is not None and len(data) > 0

    def shape(self, index: int) -> list[int]:
        shape = self.graph.tensors[index].shape
        return [] if shape is None else [int(s) for s in shape]

    def activations(self, indices) -> list[int]:
        return [int(i) for i in (indices if indices is not None else ()) if i >= 0
                and not self.is_constant(int(i))]

    def users(self):
        producer, consumers = {}, defaultdict(list)
        for n, op in enumerate(self.graph.operators):
            for i in op.outputs:
                producer[int(i)] = n
            for i in self.activations(op.inputs):
                consumers[i].append(n)
        return producer, consumers

    def add_constant(self, values: np.ndarray, like: int) -> int:
        """A new constant tensor holding ``values`` (type and quantization of tensor ``like``)."""
        schema = tflite_schema()
        buffer = schema.BufferT()
        buffer.data = np.frombuffer(values.tobytes(), np.uint8).copy()
        self.model.buffers.append(buffer)
        tensor = schema.TensorT()
        source = self.graph.tensors[like]
        tensor.shape = np.array(values.shape, np.int32)
        tensor.type, tensor.quantization = source.type, source.quantization
        tensor.buffer = len(self.model.buffers) - 1
        self.graph.tensors.append(tensor)
        return len(self.graph.tensors) - 1

    def pack(self) -> bytes:
        import flatbuffers

        builder = flatbuffers.Builder(1024)
        builder.Finish(self.model.Pack(builder), file_identifier=TFLITE_IDENTIFIER)
        return bytes(builder.Output())


def _part_key(part: str) -> str:
    # "<model>_1/<layer>_1/<op>" -> "<layer>_1/<op>": drop the model's scope, keep the layers'.
    return part.split("/", 1)[1] if "/" in part else part


def tensor_keys(content: bytes) -> list[str | None]:
    """Key of each tensor of the main subgraph (None for constants).

    Scoped names map to their layer scope; graph-level names (``StatefulPartitionedCall:k``,
    ``serving_default_audio:0``) are keyed by their producer: ``<OP>(<first input's key>)``, or
    ``input`` for graph inputs (which streaming graphs pair by propagation).
    """
    g = Graph.read(content)
    graph = g.graph
    keys: list[str | None] = [None] * len(graph.tensors)
    for op in graph.operators:
        name_of = graph.tensors
        for o in op.outputs:
            name = (name_of[o].name or b"").decode()
            if ":" not in name and "/" in name:
                keys[o] = ";".join(_part_key(p) for p in name.split(";"))
        for o in op.outputs:
            if keys[o] is None:
                first = next((i for i in op.inputs if i >= 0 and keys[i] is not None), None)
                keys[o] = f"{g.kind(op)}({keys[first] if first is not None else ''})"
    return keys



def _is_lifted_shape(shape4: list[int], shape3: list[int]) -> bool:
    return len(shape3) == 3 and shape3[0] == 1 and shape4 == [1, 1] + shape3[1:]


def _reshape_kind(g: Graph, op) -> str | None:
    """'squeeze' ([1, 1, T, C] -> [1, T, C]), 'expand' (the reverse) or None."""
    if g.kind(op) != "RESHAPE" or len(op.outputs) != 1:
        return None
    source, target = int(op.inputs[0]), int(op.outputs[0])
    if not _same_quantization(g.graph.tensors[source], g.graph.tensors[target]):
        return None
    if _is_lifted_shape(g.shape(source), g.shape(target)):
        return "squeeze"
    if _is_lifted_shape(g.shape(target), g.shape(source)):
        return "expand"
    return None


def _same_quantization(a, b) -> bool:
    qa, qb = a.quantization, b.quantization
    if a.type != b.type:
        return False
    if qa is None or qb is None:
        return (qa is None or qa.scale is None) and (qb is None or qb.scale is None)
    return all(np.array_equal(np.asarray(getattr(qa, f) if getattr(qa, f) is not None else []),
                              np.asarray(getattr(qb, f) if getattr(qb, f) is not None else []))
               for f in ("scale", "zeroPoint")) and qa.quantizedDimension == qb.quantizedDimension


def _lift_tensors(g: Graph, op) -> list[int]:
    """The tensors a liftable op reads and writes that become 4-D with it (MEAN: its input)."""
    inputs = g.activations(op.inputs)
    return inputs if g.kind(op) == "MEAN" else inputs + [int(o) for o in op.outputs]


def _constant(g: Graph, index: int) -> np.ndarray:
    tensor = g.graph.tensors[index]
    schema = tflite_schema()
    dtype = {schema.TensorType.INT32: np.int32, schema.TensorType.INT64: np.int64}[tensor.type]
    return np.frombuffer(bytes(bytearray(g.model.buffers[tensor.buffer].data)), dtype).copy()


def _liftable(g: Graph, op) -> bool:
    kind = g.kind(op)
    if kind not in LIFTABLE:
        return False
    if kind == "FULLY_CONNECTED":
        options = op.builtinOptions
        if options is None or not options.keepNumDims:
            return False
    if not all(len(g.shape(t)) == 3 and g.shape(t)[0] == 1 for t in _lift_tensors(g, op)):
        return False
    if kind == "MEAN":
        axes = _constant(g, int(op.inputs[1])) if g.is_constant(int(op.inputs[1])) else None
        return (axes is not None and op.builtinOptions is not None
                and not op.builtinOptions.keepDims and 0 not in axes.reshape(-1) % 3)
    if kind in ELEMENTWISE:  # constant operands must broadcast the same way in 4-D
        constants = [int(i) for i in op.inputs if i >= 0 and g.is_constant(int(i))]
        if any(len(g.shape(c)) > 1 for c in constants):
            return False
    if kind in ("PAD", "PADV2"):
        return g.is_constant(int(op.inputs[1]))
    return True


def fewer_reshapes(model_content: bytes) -> tuple[bytes, int]:
    """Keeps the tensors between 2-D ops 4-D and drops the RESHAPEs that moved them between
    3-D and 4-D (see the module docstring). Returns (content, RESHAPEs removed); outputs are
    bit-identical (the same kernels on the same bytes; a RESHAPE only renames a shape).

    Tensors joined by liftable ops form groups that become 4-D together. A group is lifted
    only if that removes more RESHAPEs than it needs: a tensor also read by an op that needs
    it 3-D (MEAN over time, STRIDED_SLICE, ...) gets one RESHAPE back to 3-D. Groups with a
    graph input or output (signatures name them) stay as they are."""
    schema = tflite_schema()
    model = Graph.read(model_content).model
    g = Graph(model)
    ops = g.graph.operators
    producer, consumers = g.users()

    parent = {}

    def find(t):
        while parent.setdefault(t, t) != t:
            parent[t] = parent[parent[t]]
            t = parent[t]
        return t

    lift_ops = [n for n, op in enumerate(ops) if _liftable(g, op)]
    for n in lift_ops:
        tensors = _lift_tensors(g, ops[n])
        for t in tensors[1:]:
            parent[find(t)] = find(tensors[0])
    kinds = {n: _reshape_kind(g, op) for n, op in enumerate(ops)}
    for n, kind in kinds.items():  # squeeze outputs / expand inputs start groups of their own
        if kind == "squeeze":
            find(int(ops[n].outputs[0]))
        elif kind == "expand":
            find(int(ops[n].inputs[0]))

    groups = defaultdict(set)
    for t in list(parent):
        groups[find(t)].add(t)
    lift_set = set(lift_ops)

    def outside(t: int) -> bool:
        """Written 3-D (a graph input, an op that stays 3-D): a 4-D twin is made of it."""
        p = producer.get(t)
        return p is None or (p not in lift_set and kinds.get(p) != "squeeze")

    lifted = set()
    for members in groups.values():
        gain = cost = 0
        for t in members:
            if t in g.fixed and not outside(t):
                cost = None  # a graph output written by a lifted op
                break
            if outside(t):
                cost += 1  # one RESHAPE to its 4-D twin
                readers = []
            else:
                gain += kinds.get(producer[t]) == "squeeze"
                readers = [c for c in consumers[t] if c not in lift_set]
            expands = [c for c in consumers[t] if c not in lift_set and kinds.get(c) == "expand"
                       and int(ops[c].outputs[0]) not in g.fixed]
            gain += len(expands)
            cost += 1 if len(readers) > len(expands) else 0
        if cost is not None and gain > cost:
            lifted |= members
    if not lifted:
        return model_content, 0

    reshape_code = next(k for k, name in enumerate(g.kinds) if name == "RESHAPE")
    shape_constants, before, added = {}, defaultdict(list), 0

    def new_reshape(source: int, shape: list[int], first_reader: int) -> int:
        """A RESHAPE of ``source`` to ``shape`` ahead of op ``first_reader``; its output."""
        tensor = g.graph.tensors[source]
        copy = schema.TensorT()
        copy.shape, copy.type, copy.quantization, copy.buffer = np.array(shape, np.int32), \
            tensor.type, tensor.quantization, 0
        g.graph.tensors.append(copy)
        output = len(g.graph.tensors) - 1
        key = tuple(shape)
        if key not in shape_constants:
            shape_constants[key] = g.add_constant(np.array(shape, np.int32), source)
            g.graph.tensors[shape_constants[key]].type = schema.TensorType.INT32
            g.graph.tensors[shape_constants[key]].quantization = None
        reshape = schema.OperatorT()
        reshape.opcodeIndex = reshape_code
        reshape.inputs = np.array([source, shape_constants[key]], np.int32)
        reshape.outputs = np.array([output], np.int32)
        before[first_reader].append(reshape)
        return output

    def replace_input(n: int, old: int, new: int) -> None:
        ops[n].inputs = np.array([new if int(i) == old else int(i) for i in ops[n].inputs],
                                 np.int32)

    # 1. Lifted tensors become [1, 1, T, C]; one written 3-D gets a 4-D twin that the lifted
    #    ops read instead.
    twins = {}
    for t in sorted(lifted):
        shape4 = [1, 1] + g.shape(t)[1:]
        if outside(t):
            readers = [c for c in consumers[t] if c in lift_set or kinds.get(c) == "expand"]
            twins[t] = new_reshape(t, shape4, min(readers))
            added += 1
            for c in readers:
                if c in lift_set:
                    replace_input(c, t, twins[t])
            continue
        tensor = g.graph.tensors[t]
        tensor.shape = np.array(shape4, np.int32)
        if tensor.shapeSignature is not None and len(tensor.shapeSignature) == 3:
            signature = [int(s) for s in tensor.shapeSignature]
            tensor.shapeSignature = np.array([signature[0], 1] + signature[1:], np.int32)
    # 2. Liftable ops on lifted tensors get their options and constants for 4-D.
    constants = {}

    def constant(old: int, values: np.ndarray) -> int:
        key = (g.kind(op), old)
        if key not in constants:
            constants[key] = g.add_constant(values, old)
        return constants[key]

    for n in lift_ops:
        op = ops[n]
        if _lift_tensors(g, op)[0] not in lifted:
            continue
        kind = g.kind(op)
        if kind in ("PAD", "PADV2", "MEAN"):
            old = int(op.inputs[1])
            values = _constant(g, old)
            if kind == "MEAN":  # axes of [1, T, C] -> of [1, 1, T, C], the new axis included
                values = np.array([1] + sorted(a + 1 for a in values.reshape(-1) % 3),
                                  values.dtype)
            else:
                values = np.insert(values.reshape(3, 2), 1, [0, 0], axis=0)
            op.inputs = np.array([int(op.inputs[0]), constant(old, values)]
                                 + [int(i) for i in op.inputs[2:]], np.int32)
        elif kind == "CONCATENATION" and op.builtinOptions.axis > 0:
            op.builtinOptions.axis += 1
    # 3. RESHAPEs between 3-D and 4-D around lifted tensors go; readers that need 3-D get one.
    alias, removed = {}, set()
    for n, kind in kinds.items():
        op = ops[n]
        if kind == "squeeze" and int(op.outputs[0]) in lifted:
            alias[int(op.outputs[0])] = int(op.inputs[0])
            removed.add(n)
        elif kind == "expand" and int(op.inputs[0]) in lifted \
                and int(op.outputs[0]) not in g.fixed:
            alias[int(op.outputs[0])] = twins.get(int(op.inputs[0]), int(op.inputs[0]))
            removed.add(n)
    for t in sorted(lifted - set(twins)):
        readers = [c for c in consumers[t] if c not in lift_set and c not in removed]
        if readers:
            flat = new_reshape(t, [1] + g.shape(t)[2:], min(readers))
            for c in readers:
                replace_input(c, t, flat)
            added += 1

    def resolve(t: int) -> int:
        while t in alias:
            t = alias[t]
        return t

    new_ops = []
    for n, op in enumerate(ops):
        new_ops.extend(before.get(n, []))
        if n in removed:
            continue
        op.inputs = np.array([resolve(int(i)) if i >= 0 else int(i) for i in op.inputs],
                             np.int32)
        new_ops.append(op)
    g.graph.operators = new_ops
    return g.pack(), len(removed) - added


def drop_identity_ops(model_content: bytes) -> tuple[bytes, int]:
    """Removes ops that copy their input: MAX_POOL_2D / AVERAGE_POOL_2D with a 1x1 window,
    stride 1 and no fused activation, whose input and output have the same shape, type and
    quantization (an int8 max over one value is that value). Returns (content, ops removed)."""
    schema = tflite_schema()
    model = Graph.read(model_content).model
    g = Graph(model)
    alias, kept = {}, []
    for op in g.graph.operators:
        options = op.builtinOptions
        tensors = g.graph.tensors
        if g.kind(op) in ("MAX_POOL_2D",) and options is not None \
                and options.filterWidth == options.filterHeight == 1 \
                and options.strideW == options.strideH == 1 \
                and options.fusedActivationFunction == schema.ActivationFunctionType.NONE \
                and int(op.outputs[0]) not in g.fixed \
                and g.shape(int(op.inputs[0])) == g.shape(int(op.outputs[0])) \
                and _same_quantization(tensors[int(op.inputs[0])], tensors[int(op.outputs[0])]):
            alias[int(op.outputs[0])] = int(op.inputs[0])
            continue
        kept.append(op)
    if not alias:
        return model_content, 0

    def resolve(t: int) -> int:
        while t in alias:
            t = alias[t]
        return t

    for op in kept:
        op.inputs = np.array([resolve(int(i)) if i >= 0 else int(i) for i in op.inputs], np.int32)
    g.graph.operators = kept
    return g.pack(), len(alias)


def unfuse_computed_bias(model_content: bytes, reference: bytes) -> tuple[bytes, int]:
    """Undoes a fusion TensorFlow 2.20's converter makes in some streaming graphs (the
    residual add before mobilenet_v2's block 2 expansion; 2.21 does not):
    ``FULLY_CONNECTED(a + b, W, c)`` becomes ``FULLY_CONNECTED(a, W, bias=FULLY_CONNECTED(b, W,
    c))``, a bias computed at run time, which no int8 kernel takes. Rewritten back to
    ``FULLY_CONNECTED(ADD(a, b), W, c)``, the graph the non-stream model has.

    ``model_content`` and ``reference`` are calibrated float models (``kwsnb.tflite.quantize``): the
    new ADD's output gets the range and name of the input of the reference's
    FULLY_CONNECTED with the same weights (found by their values, not by a name), so the
    shared ranges reach it. Returns (content, rewrites); raises ValueError where a computed
    bias has no such counterpart."""
    schema = tflite_schema()
    model = Graph.read(model_content).model
    g = Graph(model)
    ref = Graph.read(reference)

    def weights(graph: Graph, op) -> bytes:
        tensor = graph.graph.tensors[int(op.inputs[1])]
        return bytes(graph.model.buffers[tensor.buffer].data) if graph.is_constant(
            int(op.inputs[1])) else b""

    reference_input = {}  # weight bytes -> the reference FULLY_CONNECTED's input tensor
    for op in ref.graph.operators:
        if ref.kind(op) == "FULLY_CONNECTED" and weights(ref, op):
            reference_input.setdefault(weights(ref, op), int(op.inputs[0]))
    producer, consumers = g.users()
    dead, before = set(), {}
    for n, op in enumerate(g.graph.operators):
        if g.kind(op) != "FULLY_CONNECTED" or len(op.inputs) < 3 or op.inputs[2] < 0 \
                or g.is_constant(int(op.inputs[2])):
            continue
        bias = int(op.inputs[2])
        inner = g.graph.operators[producer[bias]] if bias in producer else None
        if inner is None or g.kind(inner) != "FULLY_CONNECTED" or len(consumers[bias]) != 1 \
                or weights(g, inner) != weights(g, op) or not weights(g, op) \
                or inner.builtinOptions.fusedActivationFunction \
                != schema.ActivationFunctionType.NONE:
            raise ValueError(f"FULLY_CONNECTED {n} reads a computed bias that is not a "
                             "fused residual add")
        source = reference_input.get(weights(g, op))
        if source is None:
            raise ValueError(f"FULLY_CONNECTED {n}: no layer with its weights in the reference")
        first = int(op.inputs[0])
        total = schema.TensorT()
        like = ref.graph.tensors[source]
        total.name, total.type = like.name, schema.TensorType.FLOAT32
        total.shape = np.array(g.shape(first), np.int32)
        total.quantization = like.quantization
        total.buffer = 0
        g.graph.tensors.append(total)
        add = schema.OperatorT()
        add.opcodeIndex = _opcode_index(model, schema.BuiltinOperator.ADD)
        add.inputs = np.array([first, int(inner.inputs[0])], np.int32)
        add.outputs = np.array([len(g.graph.tensors) - 1], np.int32)
        add.builtinOptionsType = schema.BuiltinOptions.AddOptions
        add.builtinOptions = schema.AddOptionsT()
        op.inputs = np.array([len(g.graph.tensors) - 1, int(op.inputs[1]),
                              int(inner.inputs[2])], np.int32)
        dead.add(producer[bias])
        before[n] = add  # right before the outer op: both inputs exist by then
    if not before:
        return model_content, 0
    g.graph.operators = [new for n, op in enumerate(g.graph.operators) if n not in dead
                         for new in ([before[n]] if n in before else []) + [op]]
    return g.pack(), len(before)


def _opcode_index(model, builtin: int) -> int:
    schema = tflite_schema()
    for index, code in enumerate(model.operatorCodes):
        if max(code.builtinCode, code.deprecatedBuiltinCode) == builtin:
            return index
    code = schema.OperatorCodeT()
    code.builtinCode, code.deprecatedBuiltinCode, code.version = builtin, min(builtin, 127), 1
    model.operatorCodes.append(code)
    return len(model.operatorCodes) - 1


def pack_shared(model) -> bytes:
    """Serializes a ``ModelT``, writing equal vectors (but not constant data, which keeps one
    buffer per tensor), equal quantization tables and equal operator options (the options of
    most FULLY_CONNECTED, CONV_2D and PAD ops of a model are the same table) once: flatbuffer
    offsets may point at the same object, as ``flatc``'s shared strings do."""
    import flatbuffers

    schema = tflite_schema()

    class SharingBuilder(flatbuffers.Builder):
        def __init__(self, size):
            super().__init__(size)
            self.vectors, self.tables = {}, {}

        def CreateNumpyVector(self, x):  # noqa: N802 - flatbuffers' name
            if x.dtype == np.uint8:  # buffer data and custom options
                return super().CreateNumpyVector(x)
            key = (x.dtype.str, x.tobytes())
            if key not in self.vectors:
                self.vectors[key] = super().CreateNumpyVector(x)
            return self.vectors[key]

    def value_key(value):
        if value is None or isinstance(value, (bool, int, float, str, bytes)):
            return value
        if isinstance(value, np.ndarray):
            return (value.dtype.str, value.shape, value.tobytes())
        if isinstance(value, (list, tuple)) and all(
                v is None or isinstance(v, (bool, int, float)) for v in value):
            return tuple(value)
        raise TypeError  # a nested table: not shared

    def shared(pack):
        def pack_once(self, builder):
            if not isinstance(builder, SharingBuilder):
                return pack(self, builder)
            try:
                key = (type(self).__name__,) + tuple(
                    (name, value_key(value)) for name, value in sorted(vars(self).items()))
            except TypeError:
                return pack(self, builder)
            if key not in builder.tables:
                builder.tables[key] = pack(self, builder)
            return builder.tables[key]
        return pack_once

    classes = {schema.QuantizationParametersT}
    for graph in model.subgraphs:
        classes.update(type(op.builtinOptions) for op in graph.operators
                       if op.builtinOptions is not None)
    originals = {cls: cls.Pack for cls in classes}
    builder = SharingBuilder(1024)
    try:
        for cls, pack in originals.items():
            cls.Pack = shared(pack)
        builder.Finish(model.Pack(builder), file_identifier=TFLITE_IDENTIFIER)
    finally:
        for cls, pack in originals.items():
            cls.Pack = pack
    return bytes(builder.Output())
