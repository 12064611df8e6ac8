"""TensorFlow Lite Micro's host interpreter: ``TFLMRunner`` (by signature name, values as stored,
a ``kwsnb.streaming.StreamRunner`` backend), ``tflm_check`` (loads? runs? in how much arena?)
and the smallest arena, probed in a child process."""
from __future__ import annotations

import re
import sys
import tempfile
from pathlib import Path
from typing import Mapping, Sequence

import numpy as np

from kwsnb.tflite import runtime
from kwsnb.tflite.runtime import captured_output
from kwsnb.tflite.flatbuffer import Graph

NON_STREAM = "features_int8"
STREAM = "stream_features_int8"
MICRO_FORMATS = (NON_STREAM, STREAM)
ARRAY_ALIGNMENT = 16
# Arena given to the TFLM interpreter before its recorded usage is known; models here need
# well under 100 KB.
PROBE_ARENA_BYTES = 1 << 20


class MicroError(RuntimeError):
    """A model or train_dir that cannot be exported for microcontrollers, explained."""


# ---------------------------------------------------------------------------------------------
# Running models: LiteRT and TFLM, by signature name, raw (int8) values
# ---------------------------------------------------------------------------------------------

def _content(model) -> bytes:
    if isinstance(model, (bytes, bytearray, memoryview)):
        return bytes(model)
    path = Path(model)
    if not path.is_file():
        raise MicroError(f"{path} not found")
    return path.read_bytes()


def io_positions(content: bytes) -> tuple[dict[str, int], dict[str, int]]:
    """{signature name: position in the subgraph's inputs / outputs} (TFLM addresses tensors
    by position)."""
    model = Graph.read(content).model
    graph = model.subgraphs[0]
    graph_inputs, graph_outputs = list(graph.inputs), list(graph.outputs)
    if not model.signatureDefs:
        return ({f"input_{i}": i for i in range(len(graph_inputs))},
                {f"output_{i}": i for i in range(len(graph_outputs))})
    signature = model.signatureDefs[0]
    return ({m.name.decode(): graph_inputs.index(m.tensorIndex) for m in signature.inputs},
            {m.name.decode(): graph_outputs.index(m.tensorIndex) for m in signature.outputs})


def _tflm_runtime():
    try:
        from tflite_micro.python.tflite_micro import runtime
    except ImportError as error:
        raise MicroError("TensorFlow Lite Micro's Python interpreter is not installed "
                         f"({error}): pip install tflite-micro") from None
    return runtime


def tflm_available() -> bool:
    """Whether TensorFlow Lite Micro's Python interpreter (``tflite-micro``) is installed."""
    try:
        _tflm_runtime()
    except MicroError:
        return False
    return True


class TFLMRunner:
    """TFLM's host interpreter fed and read by signature name (names from the flatbuffer's
    signature; TFLM itself knows positions only). Raises MicroError with TFLM's own message
    when the model cannot be loaded."""

    def __init__(self, model, arena_size: int = PROBE_ARENA_BYTES):
        tflm = _tflm_runtime()
        self.content = _content(model)
        self.arena_size = int(arena_size)
        self.input_positions, self.output_positions = io_positions(self.content)
        log: list[str] = []
        try:
            with captured_output(log):
                self.interpreter = tflm.Interpreter.from_bytes(self.content,
                                                                  arena_size=self.arena_size)
        except (RuntimeError, ValueError) as error:
            raise MicroError(_tflm_message(error, log)) from None
        self.inputs = {name: self.interpreter.get_input_details(i)
                       for name, i in self.input_positions.items()}
        self.outputs = {name: self.interpreter.get_output_details(i)
                        for name, i in self.output_positions.items()}

    def run(self, feeds: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        for name, value in feeds.items():
            details = self.inputs[name]
            self.interpreter.set_input(
                np.ascontiguousarray(np.asarray(value, details["dtype"]).reshape(details["shape"])),
                self.input_positions[name])
        log: list[str] = []
        try:
            with captured_output(log):
                self.interpreter.invoke()
        except (RuntimeError, ValueError) as error:
            raise MicroError(_tflm_message(error, log)) from None
        return {name: np.array(self.interpreter.get_output(i))
                for name, i in self.output_positions.items()}

    def arena_used(self) -> int | None:
        """Arena bytes TFLM's recording allocator reports (call after one ``run``)."""
        log: list[str] = []
        with captured_output(log):
            self.interpreter.print_allocations()
        found = re.search(r"Arena allocation total (\d+) bytes", log[0])
        return int(found.group(1)) if found else None


def _tflm_message(error: Exception, log: list[str]) -> str:
    lines = [line.strip() for line in "".join(log).splitlines() if line.strip()]
    lines = list(dict.fromkeys(lines))  # TFLM repeats itself
    return "; ".join(lines + [str(error)])[:1000]


def _zero_inputs(runner: TFLMRunner) -> dict[str, np.ndarray]:
    """Inputs at their zero point (0.0) for every tensor."""
    feeds = {}
    for name, details in runner.inputs.items():
        zero_points = details.get("quantization_parameters", {}).get("zero_points")
        zero = int(zero_points[0]) if zero_points is not None and len(zero_points) else 0
        feeds[name] = np.full(details["shape"], zero, details["dtype"])
    return feeds


def tflm_check(model, inputs: Mapping[str, np.ndarray] | None = None,
               find_minimum: bool = True) -> dict:
    """Does ``model`` (bytes or a .tflite path) load and run in TFLM, and in how much arena?

    Returns ``{"runs": bool, "arena_bytes": int | None, "arena_min_bytes": int | None,
    "error": str | None, "operators": [...], "size_bytes": int}``. ``arena_bytes``: what TFLM's
    recording allocator reports after one invoke (``inputs`` by signature name, zero points
    by default); ``arena_min_bytes``: the smallest arena (to 16 bytes) that still loads and
    runs, found by bisection (``find_minimum``). An error (missing op, arena too small, no
    tflite-micro) comes back as ``runs: False`` with TFLM's message, never as an exception,
    so a report can tabulate it.
    """
    content = _content(model)
    result = {"runs": False, "arena_bytes": None, "arena_min_bytes": None, "error": None,
              "operators": runtime.operator_names(content), "size_bytes": len(content)}
    try:
        runner = TFLMRunner(content)
        runner.run(dict(inputs) if inputs is not None else _zero_inputs(runner))
        result["arena_bytes"] = runner.arena_used()
    except MicroError as error:
        result["error"] = str(error)
        return result
    result["runs"] = True
    if find_minimum:
        result["arena_min_bytes"] = minimum_arena(content, inputs, result["arena_bytes"])
    return result


# One probe of an arena size, in a child process: TFLM aborts or crashes (instead of returning
# an error) for some arena sizes that are too small ("All temp buffers must be freed before
# calling ResetTempAllocations()", measured), which must not take the caller down with it.
_PROBE = """
import sys
import numpy as np
from tflite_micro.python.tflite_micro import runtime
content = open(sys.argv[1], "rb").read()
interpreter = runtime.Interpreter.from_bytes(content, arena_size=int(sys.argv[2]))
inputs = np.load(sys.argv[3])
for position in range(len(inputs.files)):
    interpreter.set_input(inputs[f"arr_{position}"], position)
interpreter.invoke()
print("KWSNB_ARENA_OK")
"""


def arena_works(content: bytes, size: int, inputs: Sequence[np.ndarray]) -> bool:
    """Whether TFLM loads and runs ``content`` in an arena of ``size`` bytes (``inputs`` by
    input position), tried in a child process."""
    import subprocess

    with tempfile.TemporaryDirectory(prefix="kwsnb_micro_") as tmp:
        model_path, inputs_path = Path(tmp) / "model.tflite", Path(tmp) / "inputs.npz"
        model_path.write_bytes(content)
        np.savez(inputs_path, *inputs)
        try:
            done = subprocess.run([sys.executable, "-c", _PROBE, str(model_path), str(int(size)),
                                   str(inputs_path)], capture_output=True, text=True, timeout=120)
        except subprocess.TimeoutExpired:
            return False
    return done.returncode == 0 and "KWSNB_ARENA_OK" in done.stdout


def minimum_arena(content: bytes, inputs: Mapping[str, np.ndarray] | None = None,
                  hint: int | None = None) -> int:
    """Smallest arena (a multiple of 16 bytes) in which ``content`` loads and runs in TFLM.

    ``hint``: the recording allocator's total (``TFLMRunner.arena_used``), in practice exactly
    the minimum, so two probes (hint works, hint - 16 does not) usually settle it; otherwise a
    bisection."""
    runner = TFLMRunner(content)
    feeds = dict(inputs) if inputs is not None else _zero_inputs(runner)
    ordered = [None] * len(runner.input_positions)
    for name, position in runner.input_positions.items():
        details = runner.inputs[name]
        ordered[position] = np.ascontiguousarray(
            np.asarray(feeds[name], details["dtype"]).reshape(details["shape"]))

    def works(size: int) -> bool:
        return arena_works(content, size, ordered)

    high = -(-(hint or PROBE_ARENA_BYTES) // ARRAY_ALIGNMENT) * ARRAY_ALIGNMENT
    while not works(high):
        high *= 2
        if high > 64 * PROBE_ARENA_BYTES:
            raise MicroError("the model does not run in TFLM with 64 MiB of arena")
    if hint and not works(high - ARRAY_ALIGNMENT):
        return high
    low = 0  # does not work (assumed)
    while high - low > ARRAY_ALIGNMENT:
        middle = (low + high) // 2 // ARRAY_ALIGNMENT * ARRAY_ALIGNMENT
        if middle <= low:
            break
        if works(middle):
            high = middle
        else:
            low = middle
    return high


