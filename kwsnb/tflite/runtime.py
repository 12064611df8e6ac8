"""Reading, inspecting and running .tflite files with LiteRT (the ``ai_edge_litert`` interpreter).

The lowest module of ``kwsnb.tflite``: it needs only ``kwsnb.streaming``'s runner, so export
(which checks what it wrote), evaluation, detection and the microcontroller checks build on it.
``TFLiteModel`` sets and gets tensors by signature name, (de)quantizing int8 tensors with their
own scale and zero point, and is a backend of ``kwsnb.streaming.StreamRunner``;
``predict_non_stream`` runs a model clip by clip the way the reports measure it; ``open_stream``
opens a streaming format (with its metadata.json) as a StreamRunner.
"""
from __future__ import annotations

import contextlib
import json
import os
import re
import sys
import tempfile
import time
from pathlib import Path
from typing import Mapping, Sequence

import numpy as np

from kwsnb.streaming import StreamRunner, dequantize, quantize


@contextlib.contextmanager
def captured_output(sink: list | None = None):
    """Collects what C++ code writes to file descriptors 1 and 2 (TFLite Micro reports errors
    and arena usage there, the converter hundreds of log lines) into ``sink`` as one string, or
    drops it (``sink`` None)."""
    sys.stdout.flush()
    sys.stderr.flush()
    saved = [os.dup(1), os.dup(2)]
    with tempfile.TemporaryFile() as capture:
        os.dup2(capture.fileno(), 1)
        os.dup2(capture.fileno(), 2)
        try:
            yield
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
            os.dup2(saved[0], 1)
            os.dup2(saved[1], 2)
            for fd in saved:
                os.close(fd)
            if sink is not None:
                capture.seek(0)
                sink.append(capture.read().decode(errors="replace"))


TFLITE_IDENTIFIER = b"TFL3"


MODEL_FILE = "model.tflite"


METADATA_FILE = "metadata.json"


class ExportError(RuntimeError):
    """A model that cannot be exported as asked, or a .tflite file that cannot be read."""


def tflite_schema():
    from ai_edge_litert import schema_py_generated

    return schema_py_generated


def opcode_names() -> dict[int, str]:
    schema = tflite_schema()
    return {value: name for name, value in vars(schema.BuiltinOperator).items()
            if not name.startswith("_")}


def operator_names(model_content: bytes) -> list[str]:
    """The distinct operators of a TFLite model, all subgraphs, sorted; a custom op (Flex ops
    included) appears as ``CUSTOM:<its code>``."""
    schema = tflite_schema()
    model = schema.Model.GetRootAs(model_content, 0)
    names = opcode_names()
    found = set()
    for i in range(model.OperatorCodesLength()):
        code = model.OperatorCodes(i)
        builtin = max(code.BuiltinCode(), code.DeprecatedBuiltinCode())
        if builtin == schema.BuiltinOperator.CUSTOM:
            found.add(f"CUSTOM:{(code.CustomCode() or b'').decode()}")
        else:
            found.add(names.get(builtin, f"BUILTIN_{builtin}"))
    return sorted(found)


def check_builtin_ops(model_content: bytes, what: str = "model") -> list[str]:
    """Returns the model's operators; raises ExportError if any is a custom or Flex op."""
    names = operator_names(model_content)
    custom = [n.split(":", 1)[1] for n in names if n.startswith("CUSTOM:")]
    if custom:
        raise ExportError(f"{what} needs non-builtin TFLite ops {custom}; kwsnb exports only "
                          "models made of builtin ops (the front end must be kwsnb.features.MFCC)")
    return names


def _reexport_hint(path: Path) -> str:
    """The command that writes a train_dir's format again (kwsnb.train has no --reexport)."""
    return f"`python -m kwsnb.evaluate {path.parent.parent} --reexport`"


def read_tflite(path: str | Path) -> bytes:
    """Reads a .tflite file and checks that LiteRT can load it; ExportError names the file."""
    path = Path(path)
    if not path.is_file():
        raise ExportError(f"{path} not found: export the model first "
                          "(kwsnb.tflite.export.export, or `python -m kwsnb.evaluate TRAIN_DIR --reexport`)")
    content = path.read_bytes()
    if len(content) < 8 or content[4:8] != TFLITE_IDENTIFIER:
        raise ExportError(f"{path} is not a TFLite model (no TFL3 flatbuffer identifier; "
                          f"{len(content)} bytes): in a train_dir, export it again with "
                          f"{_reexport_hint(path)}")
    try:
        interpreter = make_interpreter(content)
        interpreter.allocate_tensors()
    except (ValueError, RuntimeError) as error:
        raise ExportError(f"{path} is corrupt: LiteRT cannot load it ({error}). "
                          f"In a train_dir, export it again with {_reexport_hint(path)}") from None
    return content


def make_interpreter(model_content: bytes, num_threads: int = 1):
    """A LiteRT interpreter (one thread by default: latencies are reported single-threaded)."""
    from ai_edge_litert.interpreter import Interpreter

    return Interpreter(model_content=model_content, num_threads=num_threads)


def describe_io(model_content: bytes) -> dict:
    """Inputs and outputs of the model's serving signature (Keras names and order): name,
    shape, dtype and (scale, zero point) for quantized tensors."""
    interpreter = make_interpreter(model_content)
    runner_inputs, runner_outputs = signature_details(interpreter)

    def describe(details):
        scale, zero_point = details["quantization"]
        entry = {"shape": [int(d) for d in details["shape"]],
                 "dtype": np.dtype(details["dtype"]).name}
        if scale:
            entry["scale"] = float(scale)
            entry["zero_point"] = int(zero_point)
        return entry

    return {"inputs": {name: describe(d) for name, d in runner_inputs.items()},
            "outputs": {name: describe(d) for name, d in runner_outputs.items()}}


def signature_details(interpreter) -> tuple[dict, dict]:
    """Input and output details keyed by signature name. Tensor order in a multi-input TFLite
    model is not the Keras order, names are reliable: inputs keep the Keras input names, outputs
    the keys of a dict output or ``output_0, output_1, ...`` (Keras order) for a list."""
    signatures = interpreter.get_signature_list()
    if len(signatures) != 1:
        raise ExportError(f"expected one signature in the TFLite model, found {list(signatures)}")
    key = next(iter(signatures))
    runner = interpreter.get_signature_runner(key)
    inputs, outputs = runner.get_input_details(), runner.get_output_details()
    output_order = sorted(outputs, key=lambda n: int(n.rsplit("_", 1)[-1])
                          if re.fullmatch(r"output_\d+", n) else -1)
    return ({n: inputs[n] for n in signatures[key]["inputs"]},
            {n: outputs[n] for n in output_order})


def check_io(runner: "TFLiteModel", path, classes: int, logits_output: str | None = None,
             clip_samples: int | None = None) -> None:
    """ExportError when a .tflite does not fit the model it is used for: another number of
    outputs than labels, or (``clip_samples``) another clip length. A file copied from another
    train_dir would otherwise be scored or run against the wrong labels."""
    logits = logits_output or runner.output_name
    outputs = int(runner.outputs[logits]["shape"][-1]) if logits in runner.outputs else None
    found = []
    if outputs != classes:
        found.append(f"{outputs} outputs where the train_dir has {classes} labels")
    if clip_samples is not None:
        samples = int(runner.inputs[runner.input_name]["shape"][-1])
        if samples != clip_samples:
            found.append(f"{samples} input samples where its clips have {clip_samples}")
    if found:
        train_dir = Path(path).parent.parent
        raise ExportError(f"{path} does not belong to {train_dir}: it has {' and '.join(found)} "
                          f"(a file from another model?). Export this train_dir's own with "
                          f"{_reexport_hint(Path(path))}")


def as_audio(audio) -> np.ndarray:
    audio = np.asarray(audio, dtype=np.float32)
    if audio.ndim != 2 or len(audio) == 0:
        raise ExportError(f"expected audio clips shaped [clips, samples], got {audio.shape}")
    return audio


LATENCY_RUNS = 200
LATENCY_WARMUP = 20
# LiteRT kernels: "default" is what the reports run (XNNPACK for int8 FULLY_CONNECTED/CONV, which
# rounds differently: measured up to 2 int8 steps from TFLite Micro on logits); "builtin" the
# optimized builtin kernels without delegates; "reference" LiteRT's reference kernels, of which
# TFLite Micro's are ports.
LITERT_KERNELS = ("default", "builtin", "reference")


class TFLiteModel:
    """A LiteRT interpreter (one thread) with inputs and outputs by signature name.

    ``set``/``get`` take and give float values ((de)quantized with each tensor's own scale and
    zero point); ``run`` takes and gives values as stored, which makes it a backend of
    ``kwsnb.streaming.StreamRunner``. ``kernels``: one of ``LITERT_KERNELS``.
    """

    def __init__(self, content: bytes, name: str = "model", kernels: str = "default"):
        from ai_edge_litert.interpreter import Interpreter, OpResolverType

        resolvers = {"default": OpResolverType.AUTO,
                     "builtin": OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES,
                     "reference": OpResolverType.BUILTIN_REF}
        if kernels not in resolvers:
            raise ValueError(f"kernels must be one of {LITERT_KERNELS}, got {kernels!r}")
        self.content = bytes(content)
        self.name = name
        self.kernels = kernels
        self.interpreter = Interpreter(model_content=self.content, num_threads=1,
                                       experimental_op_resolver_type=resolvers[kernels])
        self.interpreter.allocate_tensors()
        self.inputs, self.outputs = signature_details(self.interpreter)

    def fresh(self) -> "TFLiteModel":
        """A new interpreter of the same model: the only way to reset resource variables."""
        return TFLiteModel(self.content, self.name, self.kernels)

    def set(self, name: str, value: np.ndarray) -> None:
        details = self.inputs[name]
        self.interpreter.set_tensor(details["index"], quantize(value, details))

    def get(self, name: str) -> np.ndarray:
        details = self.outputs[name]
        return dequantize(self.interpreter.get_tensor(details["index"]), details)

    def run(self, feeds: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Sets the inputs as stored (int8 as int8), invokes, returns every output as stored."""
        for name, value in feeds.items():
            details = self.inputs[name]
            self.interpreter.set_tensor(details["index"], np.asarray(
                value, details["dtype"]).reshape(details["shape"]))
        self.interpreter.invoke()
        return {name: self.interpreter.get_tensor(d["index"]).copy()
                for name, d in self.outputs.items()}

    @property
    def input_name(self) -> str:
        return next(iter(self.inputs))

    @property
    def output_name(self) -> str:
        return next(iter(self.outputs))

    def latency_ms(self, runs: int = LATENCY_RUNS, warmup: int = LATENCY_WARMUP) -> float:
        """Median wall time of one ``invoke()`` with the inputs as they are set."""
        invoke = self.interpreter.invoke
        for _ in range(warmup):
            invoke()
        times = np.empty(runs)
        for i in range(runs):
            start = time.perf_counter()
            invoke()
            times[i] = time.perf_counter() - start
        return float(np.median(times) * 1000.0)


def predict_non_stream(model: TFLiteModel, inputs: np.ndarray, progress: bool = False) -> np.ndarray:
    """Runs a one-input model on each example (batch 1); returns float logits [N, classes]."""
    name, output = model.input_name, model.output_name
    logits = []
    for example in _progress(inputs, progress, f"{model.name}"):
        model.set(name, example[np.newaxis])
        model.interpreter.invoke()
        logits.append(model.get(output)[0])
    return np.stack(logits)


def read_metadata(format_dir: Path) -> dict:
    """A format folder's metadata.json ({} when there is none); ExportError names a broken one."""
    path = Path(format_dir) / METADATA_FILE
    if not path.is_file():
        return {}
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as error:
        raise ExportError(f"{path} is not valid JSON ({error}); export the format again with "
                          f"{_reexport_hint(path)}") from None


def stream_runner(model: TFLiteModel, metadata: Mapping | None = None) -> StreamRunner:
    """A StreamRunner of a converted streaming model, its inputs, outputs and state pairs named
    by the format's ``metadata`` where given (else kwsnb's naming)."""
    metadata = metadata or {}
    pairs = [(s["input"], s["output"]) for s in metadata["states"]] if "states" in metadata \
        else None
    return StreamRunner(model, packet_input=metadata.get("packet_input"),
                        logits_output=metadata.get("logits_output"), state_pairs=pairs,
                        audio_state=metadata.get("audio_state"))


def open_stream(source, non_stream_formats: Sequence[str] = (),
                stream_formats: Sequence[str] = ()) -> tuple[StreamRunner, dict]:
    """A streaming .tflite (bytes, a path, or its format folder) as (StreamRunner, metadata).

    A non-stream model is refused with a message naming ``stream_formats``: it would score
    every packet as if it were a whole clip."""
    metadata = {}
    if isinstance(source, (bytes, bytearray)):
        content, where, name = bytes(source), "the TFLite model", "model"
    else:
        path = Path(source).expanduser()
        if path.is_dir():
            path = path / MODEL_FILE
        content, where, name = read_tflite(path), str(path), path.parent.name
        metadata = read_metadata(path.parent)
    names = ", ".join(stream_formats) or "a streaming format"
    if metadata.get("format") in non_stream_formats:
        raise ValueError(f"{where} is a non-stream model ({metadata['format']}); long-audio "
                         f"detection needs a streaming format: {names}")
    model = TFLiteModel(content, name)
    if len(model.inputs) == 1 and "VAR_HANDLE" not in operator_names(content):
        raise ValueError(f"{where} is a non-stream model (one input, no state); long-audio "
                         f"detection needs a streaming format: {names}")
    try:
        return stream_runner(model, metadata), metadata
    except ValueError as error:
        raise ValueError(f"{where}: {error} ({names})") from None


def _progress(items, enabled: bool, desc: str):
    if not enabled:
        return items
    from tqdm.auto import tqdm

    return tqdm(items, desc=desc, unit="clip", leave=False)
