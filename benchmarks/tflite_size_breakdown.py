"""Where the bytes of a .tflite file go: constants by kind, graph structure, metadata.

    python benchmarks/tflite_size_breakdown.py models/tc_resnet/tflite_int8/model.tflite [...]
    python benchmarks/tflite_size_breakdown.py models/inception --top 15

A folder stands for every ``*/model.tflite`` under it. For each file it prints

* constant buffers grouped by (dtype, role): the role is ``front end`` for the MFCC layer's
  constants (tensor names ``mfcc/...`` kept by ``kwsnb.tflite.convert.strip_tensor_names``, or the
  constants the front-end ops read), ``weights`` for constants the body's ops read, and
  ``shape/index`` for int32/int64 constants that are shapes, axes or indices (read by RESHAPE,
  TRANSPOSE, STRIDED_SLICE, GATHER, ...), with counts;
* the largest constant buffers one by one (``--top``), with their readers;
* buffers no tensor uses, buffers whose bytes duplicate another's, bytes of quantization
  parameters (scales, zero points, min/max), of tensor names, of the model metadata and
  signature defs;
* the rest: operators, tensor tables, shapes, flatbuffer padding (file size minus the above).

Numbers are bytes of the serialized file (``len(buffer.data)`` for constants, an estimate from
the arrays' element counts for quantization parameters, names and shapes).
"""
from __future__ import annotations

import argparse
import hashlib
import os
import sys
from collections import defaultdict
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from kwsnb.tflite.runtime import opcode_names, tflite_schema  # noqa: E402

# Readers of a constant that make it a shape, axis, index or size, not a weight.
SHAPE_READERS = {"RESHAPE", "TRANSPOSE", "STRIDED_SLICE", "SLICE", "GATHER", "PAD", "PADV2",
                 "CONCATENATION", "EXPAND_DIMS", "SQUEEZE", "MEAN", "SUM", "REDUCE_MAX",
                 "REDUCE_PROD", "RFFT2D", "UNSORTED_SEGMENT_SUM", "PACK", "FILL", "TILE",
                 "BROADCAST_TO", "SPLIT", "SPLIT_V", "REVERSE_V2", "RANGE", "GATHER_ND"}
TYPE_NAMES = None


def type_name(code: int) -> str:
    global TYPE_NAMES
    if TYPE_NAMES is None:
        schema = tflite_schema()
        TYPE_NAMES = {v: k for k, v in vars(schema.TensorType).items() if not k.startswith("_")}
    return TYPE_NAMES.get(code, str(code))


def _array_bytes(value) -> int:
    if value is None:
        return 0
    try:
        return int(getattr(value, "nbytes", None) or len(value) * 8)
    except TypeError:
        return 0


def breakdown(content: bytes, front_end_prefix: str = "mfcc/") -> dict:
    """Byte counts of one flatbuffer (see the module docstring)."""
    schema = tflite_schema()
    model = schema.ModelT.InitFromPackedBuf(content, 0)
    names = opcode_names()

    def opname(op, graph_model=model):
        code = graph_model.operatorCodes[op.opcodeIndex]
        builtin = max(code.builtinCode, code.deprecatedBuiltinCode)
        return names.get(builtin, f"BUILTIN_{builtin}")

    buffer_bytes = [0 if b.data is None else len(b.data) for b in model.buffers]
    readers = defaultdict(set)        # buffer -> op names reading it
    front_end_buffers = set()
    tensor_of_buffer = {}
    quant_bytes = name_bytes = shape_bytes = 0
    tensor_count = op_count = 0
    used_buffers = set()
    for graph in model.subgraphs:
        op_count += len(graph.operators)
        tensor_count += len(graph.tensors)
        for tensor in graph.tensors:
            used_buffers.add(tensor.buffer)
            tensor_of_buffer.setdefault(tensor.buffer, tensor)
            name_bytes += len(tensor.name or b"")
            shape_bytes += 4 * (0 if tensor.shape is None else len(tensor.shape))
            shape_bytes += 4 * (0 if tensor.shapeSignature is None else len(tensor.shapeSignature))
            q = tensor.quantization
            if q is not None:
                quant_bytes += sum(_array_bytes(getattr(q, f)) for f in
                                   ("scale", "zeroPoint", "min", "max"))
            if (tensor.name or b"").decode(errors="replace").startswith(front_end_prefix):
                front_end_buffers.add(tensor.buffer)
        # Constants read by front-end ops belong to the front end too.
        front_end_ops = [op for op in graph.operators
                         if any((graph.tensors[o].name or b"").decode(errors="replace")
                                .startswith(front_end_prefix) for o in op.outputs)]
        for op in graph.operators:
            for i in op.inputs:
                if i >= 0:
                    readers[graph.tensors[i].buffer].add(opname(op))
        for op in front_end_ops:
            front_end_buffers.update(graph.tensors[i].buffer for i in op.inputs if i >= 0)

    metadata_buffers = {m.buffer for m in (model.metadata or [])}
    groups = defaultdict(lambda: [0, 0])
    big = []
    digests = defaultdict(list)
    for index, size in enumerate(buffer_bytes):
        if not size:
            continue
        tensor = tensor_of_buffer.get(index)
        dtype = type_name(tensor.type) if tensor is not None else "?"
        ops = readers.get(index, set())
        if index in metadata_buffers:
            role = "metadata"
        elif tensor is None:
            role = "unused"
        elif index in front_end_buffers:
            role = "front end"
        elif dtype in ("INT32", "INT64") and ops and ops <= SHAPE_READERS:
            role = "shape/index"
        else:
            role = "weights"
        groups[(role, dtype)][0] += size
        groups[(role, dtype)][1] += 1
        shape = None if tensor is None or tensor.shape is None else list(tensor.shape)
        big.append((size, index, dtype, role, shape, sorted(ops)))
        digests[hashlib.sha1(bytes(model.buffers[index].data)).hexdigest()].append(index)
    duplicated = sum(buffer_bytes[i] for same in digests.values() for i in same[1:])
    unused = sum(buffer_bytes[i] for i in range(len(buffer_bytes))
                 if buffer_bytes[i] and i not in used_buffers and i not in metadata_buffers)
    metadata_bytes = sum(buffer_bytes[m.buffer] for m in (model.metadata or [])
                         if m.buffer < len(buffer_bytes))
    signature_bytes = 0
    for sig in model.signatureDefs or []:
        for t in (sig.inputs or []) + (sig.outputs or []):
            signature_bytes += len(t.name or b"") + 16
        signature_bytes += len(sig.signatureKey or b"") + 16
    constant_bytes = sum(buffer_bytes)
    return {
        "file": len(content), "constants": constant_bytes, "groups": dict(groups),
        "largest": sorted(big, reverse=True), "duplicated": duplicated, "unused": unused,
        "metadata": [(m.name.decode() if m.name else "?", buffer_bytes[m.buffer]
                      if m.buffer < len(buffer_bytes) else 0) for m in (model.metadata or [])],
        "metadata_bytes": metadata_bytes, "quantization": quant_bytes, "names": name_bytes,
        "shapes": shape_bytes, "signatures": signature_bytes, "tensors": tensor_count,
        "operators": op_count, "buffers": len(model.buffers),
        "description": len(model.description or b""),
    }


def print_breakdown(path: Path, top: int) -> None:
    info = breakdown(path.read_bytes())
    kb = lambda n: f"{n / 1024:7.2f} KB"  # noqa: E731
    print(f"\n{path}  {kb(info['file'])}  ({info['operators']} ops, {info['tensors']} tensors, "
          f"{info['buffers']} buffers)")
    print(f"  constant buffers {kb(info['constants'])}")
    for (role, dtype), (size, count) in sorted(info["groups"].items(), key=lambda kv: -kv[1][0]):
        print(f"    {role:12s} {dtype:8s} {kb(size)}  in {count} buffers")
    other = info["file"] - info["constants"]
    print(f"  everything else  {kb(other)}:")
    print(f"    quantization params ~{kb(info['quantization'])}   tensor names {kb(info['names'])}"
          f"   shapes ~{kb(info['shapes'])}   signatures ~{kb(info['signatures'])}")
    print(f"    (the rest of it: operator and tensor tables, offsets, padding: "
          f"~{kb(other - info['quantization'] - info['names'] - info['shapes'] - info['signatures'])})")
    print(f"  metadata {info['metadata']}  description {info['description']} B")
    print(f"  duplicated constant bytes {info['duplicated']} B, unused buffers {info['unused']} B")
    if top:
        print(f"  largest {top} constants:")
        for size, index, dtype, role, shape, ops in info["largest"][:top]:
            print(f"    #{index:4d} {size:7d} B  {dtype:8s} {str(shape):18s} {role:12s} "
                  f"read by {','.join(ops)}")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("paths", nargs="+", type=Path)
    parser.add_argument("--top", type=int, default=10, help="largest constants to list")
    args = parser.parse_args(argv)
    for path in args.paths:
        files = sorted(path.glob("*/model.tflite")) if path.is_dir() else [path]
        for file in files:
            print_breakdown(file, args.top)
    return 0


if __name__ == "__main__":
    sys.exit(main())
