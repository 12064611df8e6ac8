"""Reading, inspecting and running .tflite files with LiteRT (the ``ai_edge_litert`` interpreter).

The lowest stage that touches TFLite: it imports nothing else from kwsnb but the layer names, so
export (which checks what it wrote), evaluation, streaming and detection all build on it.
``TFLiteModel`` sets and gets tensors by signature name, (de)quantizing int8 tensors with their
own scale and zero point; ``predict_*`` run a model over clips the way the reports measure them.
"""
from __future__ import annotations

import re
import time
from pathlib import Path

import numpy as np


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
                          "(kwsnb.export.export, or `python -m kwsnb.evaluate TRAIN_DIR --reexport`)")
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


def stream_packets(audio: np.ndarray, packet_samples: int) -> np.ndarray:
    """[clips, samples] -> [clips, packets, packet_samples] (a partial last packet is dropped)."""
    audio = as_audio(audio)
    count = audio.shape[1] // packet_samples
    return audio[:, :count * packet_samples].reshape(len(audio), count, packet_samples)


LATENCY_RUNS = 200


LATENCY_WARMUP = 20


def _quantize(values: np.ndarray, details: dict) -> np.ndarray:
    scale, zero_point = details["quantization"]
    dtype = np.dtype(details["dtype"])
    if dtype == np.float32 or not scale:
        return values.astype(dtype)
    info = np.iinfo(dtype)
    return np.clip(np.round(values / scale) + zero_point, info.min, info.max).astype(dtype)


def _dequantize(values: np.ndarray, details: dict) -> np.ndarray:
    scale, zero_point = details["quantization"]
    if np.dtype(details["dtype"]) == np.float32 or not scale:
        return values.astype(np.float32)
    return (values.astype(np.float32) - zero_point) * scale


class TFLiteModel:
    """A LiteRT interpreter (one thread) with inputs and outputs by signature name."""

    def __init__(self, content: bytes, name: str = "model"):
        self.content = content
        self.name = name
        self.interpreter = make_interpreter(content)
        self.interpreter.allocate_tensors()
        self.inputs, self.outputs = signature_details(self.interpreter)

    def fresh(self) -> "TFLiteModel":
        """A new interpreter of the same model: the only way to reset resource variables."""
        return TFLiteModel(self.content, self.name)

    def set(self, name: str, value: np.ndarray) -> None:
        details = self.inputs[name]
        self.interpreter.set_tensor(details["index"], _quantize(value, details))

    def get(self, name: str) -> np.ndarray:
        details = self.outputs[name]
        return _dequantize(self.interpreter.get_tensor(details["index"]), details)

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


def predict_stream_external(model: TFLiteModel, audio: np.ndarray, metadata: dict,
                            prime_audio_state: bool = False, progress: bool = False) -> np.ndarray:
    """Streams each clip packet by packet from zero states; logits after the last packet.
    ``prime_audio_state``: start with the clip's first packet in the audio ring buffer and feed
    the rest (exactly the non-stream frames)."""
    pairs = [(s["input"], s["output"]) for s in metadata["states"]]
    packet_name = metadata["packet_input"]
    packet_samples = int(model.inputs[packet_name]["shape"][-1])
    audio_state = metadata.get("audio_state") if prime_audio_state else None
    zeros = {name: np.zeros(model.inputs[name]["shape"], np.float32) for name, _ in pairs}
    logits_name = metadata["logits_output"]
    logits = []
    for clip in _progress(stream_packets(audio, packet_samples), progress, model.name):
        for name, value in zeros.items():
            model.set(name, value)
        packets = clip
        if audio_state is not None:
            model.set(audio_state, clip[0][np.newaxis, -model.inputs[audio_state]["shape"][-1]:])
            packets = clip[1:]
        for packet in packets:
            model.set(packet_name, packet[np.newaxis])
            model.interpreter.invoke()
            for name, output in pairs:  # (de)quantized by each tensor's own parameters
                model.set(name, model.get(output))
        logits.append(model.get(logits_name)[0])
    return np.stack(logits)


def predict_stream_internal(model: TFLiteModel, audio: np.ndarray,
                            progress: bool = False) -> np.ndarray:
    """Streams each clip through a fresh interpreter (zero states); logits after the last packet."""
    packet_samples = int(model.inputs[model.input_name]["shape"][-1])
    logits = []
    for clip in _progress(stream_packets(audio, packet_samples), progress, model.name):
        stream = model.fresh()
        name, output = stream.input_name, stream.output_name
        for packet in clip:
            stream.set(name, packet[np.newaxis])
            stream.interpreter.invoke()
        logits.append(stream.get(output)[0])
    return np.stack(logits)


def _progress(items, enabled: bool, desc: str):
    if not enabled:
        return items
    from tqdm.auto import tqdm

    return tqdm(items, desc=desc, unit="clip", leave=False)
