"""A train_dir as a microcontroller package: both features-in int8 models as .tflite and C
source/header pairs, each with a .json of inputs, states, quantization and labels, and a README."""
from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Mapping, Sequence

import numpy as np

from kwsnb import streaming
from kwsnb.micro.convert import convert_stream_features_int8, stream_state_pairs
from kwsnb.micro.runtime import (ARRAY_ALIGNMENT, NON_STREAM, STREAM, MicroError, io_positions,
                                 tflm_check)
from kwsnb.streaming import FEATURES_INPUT
from kwsnb.tflite import convert, runtime
from kwsnb.tflite import export as exporting
from kwsnb.tflite.runtime import ExportError

# ---------------------------------------------------------------------------------------------
# C source
# ---------------------------------------------------------------------------------------------

def c_identifier(name: str) -> str:
    identifier = re.sub(r"\W", "_", name)
    return identifier if not identifier[:1].isdigit() else f"_{identifier}"


def write_c_array(content: bytes, out_dir: str | Path, name: str,
                  comment: str = "") -> tuple[Path, Path]:
    """Writes ``<name>.h`` and ``<name>.cc``: ``alignas(16) const unsigned char <name>[]`` with
    the model's bytes and ``const unsigned int <name>_len``. Returns (header, source)."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    identifier = c_identifier(name)
    guard = f"KWSNB_{identifier.upper()}_H_"
    note = "".join(f"// {line}\n" for line in comment.splitlines())
    header = (f"// {identifier}: TFLite flatbuffer for TensorFlow Lite Micro, written by "
              f"kwsnb.micro.\n{note}#ifndef {guard}\n#define {guard}\n\n"
              f"extern const unsigned char {identifier}[];\n"
              f"extern const unsigned int {identifier}_len;\n\n#endif  // {guard}\n")
    rows = [", ".join(f"0x{byte:02x}" for byte in content[start:start + 12])
            for start in range(0, len(content), 12)]
    source = (f"// {identifier}: TFLite flatbuffer for TensorFlow Lite Micro, written by "
              f"kwsnb.micro.\n{note}#include \"{identifier}.h\"\n\n"
              f"// TFLM reads the flatbuffer in place: keep it {ARRAY_ALIGNMENT}-byte aligned.\n"
              f"alignas({ARRAY_ALIGNMENT}) const unsigned char {identifier}[] = {{\n"
              + "".join(f"    {row},\n" for row in rows)
              + f"}};\nconst unsigned int {identifier}_len = {len(content)};\n")
    header_path, source_path = out_dir / f"{identifier}.h", out_dir / f"{identifier}.cc"
    header_path.write_text(header)
    source_path.write_text(source)
    return header_path, source_path


def read_c_array(source: str | Path) -> bytes:
    """The bytes of the array in a ``.cc`` file written by ``write_c_array`` (checked against
    its ``_len``)."""
    text = Path(source).read_text()
    body = re.search(r"\[\]\s*=\s*\{(.*?)\};", text, re.S)
    length = re.search(r"_len\s*=\s*(\d+)\s*;", text)
    if body is None or length is None:
        raise MicroError(f"{source}: no `const unsigned char name[] = {{...}}` with its `_len`")
    content = bytes(int(value, 16) for value in re.findall(r"0x([0-9a-fA-F]{2})", body.group(1)))
    if len(content) != int(length.group(1)):
        raise MicroError(f"{source}: the array has {len(content)} bytes but _len says "
                         f"{length.group(1)}")
    return content


# ---------------------------------------------------------------------------------------------
# Metadata and README
# ---------------------------------------------------------------------------------------------

def micro_metadata(kind: str, content: bytes, model, labels: Sequence[str] | None,
                   check: Mapping | None = None) -> dict:
    """What firmware needs: I/O with quantization, states, the front end's normalization and
    feature flags, labels, and TFLM's arena."""
    mfcc = streaming.mfcc_of(streaming.front_end_layer(model))
    io = runtime.describe_io(content)
    # Firmware addresses tensors by position (interpreter.input(i) / output(i)), not by name.
    input_positions, output_positions = io_positions(content)
    for name, spec in io["inputs"].items():
        spec["index"] = input_positions[name]
    for name, spec in io["outputs"].items():
        spec["index"] = output_positions[name]
    metadata = {"format": kind, "labels": list(labels) if labels is not None else None,
                "size_bytes": len(content), "operators": runtime.operator_names(content),
                **io, "feature_flags": dict(mfcc.flags),
                "frame_samples": int(mfcc.frame_samples),
                "packet_samples": int(mfcc.packet_samples),
                "fft_length": int(mfcc.fft_length),
                "coefficient_mean": [float(v) for v in mfcc.coefficient_mean.numpy()],
                "coefficient_scale": [float(v) for v in mfcc.coefficient_scale.numpy()]}
    if kind == STREAM:
        metadata["states"] = [{"name": name, "shape": io["inputs"][name]["shape"],
                               "input": {k: io["inputs"][name][k] for k in ("scale", "zero_point")},
                               "output": {k: io["outputs"][name][k] for k in ("scale", "zero_point")}}
                              for name in stream_state_pairs(content)]
    if check is not None:
        metadata["tflm"] = {k: check[k] for k in ("runs", "arena_bytes", "arena_min_bytes", "error")}
    return metadata


def _readme(name: str, metadata: Mapping[str, Mapping]) -> str:
    first = next(iter(metadata.values()))
    flags = first["feature_flags"]
    dct = flags["dct_num_features"]
    lines = [f"# {name}: keyword spotting for TensorFlow Lite Micro (kwsnb.micro)", "",
             "Two int8 models of the same trained body (weights identical); the MFCC front end",
             "runs in your firmware. Each model is a `.tflite`, a C source/header pair",
             "(`alignas(16) const unsigned char <name>[]`, `const unsigned int <name>_len`) and a",
             "`.json` with everything below in machine-readable form.", "",
             "## Features (computed on the device, both models)", "",
             f"The seed's MFCCs (kws_streaming `mfcc_op`) on {flags['sample_rate']} Hz mono audio in "
             "[-1, 1):",
             f"1. frames of {first['frame_samples']} samples ({flags['window_size_ms']:g} ms) every "
             f"{first['packet_samples']} samples ({flags['window_stride_ms']:g} ms), no padding "
             "(1 s = 49 frames);",
             f"2. periodic Hann window, {first['fft_length']}-point FFT (zero-padded), magnitude |X|"
             + (" (the seed's power spectrum: its Mfcc op takes sqrt(|X|^2));"
                if flags["fft_magnitude_squared"] else ", then sqrt;"),
             f"3. {flags['mel_num_bins']} triangular mel filters "
             f"{flags['mel_lower_edge_hertz']:g}-{flags['mel_upper_edge_hertz']:g} Hz (mel = 1127 "
             "ln(1 + f/700), peak 1, TF Mfcc-op layout: kwsnb.features.mel_weight_matrix);",
             "4. ln(max(mel, 1e-12));",
             f"5. DCT-II scaled by sqrt(2 / {flags['mel_num_bins']}), first {dct} coefficients "
             "(kwsnb.features.dct_matrix);",
             "6. normalize: `x = (mfcc - coefficient_mean) * coefficient_scale` (per coefficient, "
             "in the .json);",
             "7. quantize: `int8 = clip(round(x / scale) + zero_point, -128, 127)` with the model "
             "input's scale and zero point below.", "",
             "coefficient_mean = " + ", ".join(f"{v:.6g}" for v in first["coefficient_mean"]),
             "",
             "coefficient_scale = " + ", ".join(f"{v:.6g}" for v in first["coefficient_scale"]),
             ""]
    for kind, meta in metadata.items():
        ident = c_identifier(f"{name}_{kind}")
        inputs, outputs = meta["inputs"], meta["outputs"]
        tflm = meta.get("tflm", {})
        lines += [f"## {ident} ({meta['size_bytes']} bytes)", ""]
        if tflm:
            lines += [f"TFLM: {'runs' if tflm.get('runs') else 'does not run: ' + str(tflm.get('error'))}"
                      f"; tensor arena: {tflm.get('arena_min_bytes')} bytes is the smallest that "
                      f"works (TFLM's recording allocator reports {tflm.get('arena_bytes')}). "
                      "Ops: "
                      + ", ".join(meta["operators"]) + ".", ""]
        lines.append("Inputs (`interpreter.input(index)`):")
        for input_name, spec in sorted(inputs.items(), key=lambda item: item[1]["index"]):
            lines.append(f"- {spec['index']}: `{input_name}` {spec['dtype']} {spec['shape']}, "
                         f"scale {spec.get('scale')}, zero_point {spec.get('zero_point')}")
        lines.append("")
        lines.append("Outputs (`interpreter.output(index)`):")
        for output_name, spec in sorted(outputs.items(), key=lambda item: item[1]["index"]):
            lines.append(f"- {spec['index']}: `{output_name}` {spec['dtype']} {spec['shape']}, "
                         f"scale {spec.get('scale')}, zero_point {spec.get('zero_point')}")
        if kind == NON_STREAM:
            lines += ["", "One call per second of audio: its "
                      f"{inputs[next(iter(inputs))]['shape'][1]} frames, oldest first."]
        else:
            same = all(s["input"] == s["output"] for s in meta["states"])
            lines += ["", f"One call per frame (every {flags['window_stride_ms']:g} ms): the newest "
                      "frame in `features`. Each `*_state` output is that layer's ring buffer "
                      "after this frame: feed it back as the same-named input on the next call "
                      + ("(same scale and zero point in and out: copy the bytes). "
                         if same else "(requantize: scales differ, see the .json). ")
                      + "Start (or reset) every state filled with its input zero_point (0.0). "
                      "After 49 frames from a reset the logits are the non-stream model's on "
                      "those 49 frames, up to int8 rounding (the two models are calibrated "
                      "separately: docs/micro.md gives the measured agreement)."]
        lines += ["", "Labels (logit order): " + ", ".join(meta["labels"] or []), ""]
    return "\n".join(lines)


# ---------------------------------------------------------------------------------------------
# A train_dir -> C sources
# ---------------------------------------------------------------------------------------------

def representative_audio(flags: Mapping, count: int = convert.REPRESENTATIVE_CLIPS) -> np.ndarray:
    """``count`` unaugmented training clips in a seeded random order (as kwsnb.evaluate
    calibrates its int8 formats)."""
    from kwsnb import data

    try:
        dataset = data.SpeechCommands.from_flags(dict(flags), progress=False)
    except (ValueError, FileNotFoundError) as error:
        raise MicroError(f"int8 calibration needs the training data (data_dir "
                         f"{flags.get('data_dir')!r}): {error}") from None
    return convert.representative_audio(dataset, count)


def load_train_dir(train_dir: str | Path):
    """(model, flags) of a train_dir; MicroError naming what is missing."""
    from kwsnb import train as training

    train_dir = Path(train_dir)
    if not train_dir.is_dir():
        raise MicroError(f"{train_dir} is not a folder: give a TRAIN_DIR written by "
                         "`python -m kwsnb.train` (flags.json, best_weights.weights.h5)")
    missing = [name for name in (training.FLAGS_FILE, training.BEST_WEIGHTS)
               if not (train_dir / name).is_file()]
    if missing:
        raise MicroError(f"no trained model in {train_dir}: {' and '.join(missing)} missing "
                         "(train one with `python -m kwsnb.train`)")
    try:
        return training.load_trained_model(train_dir)
    except training.TrainError as error:
        raise MicroError(str(error)) from None


def _current_features_int8(train_dir: Path) -> bytes | None:
    """The train_dir's tflite_features_int8 if it was exported from the current best weights
    (the digest kwsnb.evaluate records) and runs in TFLM; None otherwise."""
    from kwsnb import train as training

    folder = train_dir / "tflite_features_int8"
    path = folder / runtime.MODEL_FILE
    recorded = exporting.recorded_weights(folder)
    if not path.is_file() or recorded is None:
        return None
    if recorded != exporting.weights_digest(train_dir / training.BEST_WEIGHTS):
        return None
    try:  # a cut or foreign file is named and replaced by a fresh conversion, never run
        runtime.read_tflite(path)
    except ExportError as error:
        import warnings

        warnings.warn(f"{error}; converting the features-in model afresh", stacklevel=3)
        return None
    if not tflm_check(path, find_minimum=False)["runs"]:
        return None
    return path.read_bytes()


def export_micro(train_dir: str | Path, out_dir: str | Path, data_dir: str | None = None,
                 clips: int = convert.REPRESENTATIVE_CLIPS, check: bool = True,
                 test_audio: np.ndarray | None = None) -> dict[str, dict]:
    """Writes both features-in int8 models of a train_dir to ``out_dir``: ``<name>_<kind>``
    ``.tflite``, ``.cc``, ``.h`` and ``.json``, and ``README.md``. The non-stream model is the
    train_dir's ``tflite_features_int8`` when it runs in TFLM, converted afresh otherwise; the
    streaming one is converted (calibration on ``clips`` training clips). Returns the metadata
    per kind."""
    if int(clips) != clips or clips < 1:
        raise MicroError(f"--clips must be at least 1 (training clips that calibrate the int8 "
                         f"models), got {clips}")
    model, flags = load_train_dir(train_dir)
    if data_dir is not None:
        flags = {**flags, "data_dir": data_dir}
    name = c_identifier(flags.get("model_name") or Path(train_dir).name)
    labels = list(flags.get("labels") or [])
    audio_cache: list[np.ndarray] = []

    def audio():
        if not audio_cache:
            audio_cache.append(representative_audio(flags, clips))
        return audio_cache[0]

    contents = {}
    current = _current_features_int8(Path(train_dir))
    if current is not None:
        contents[NON_STREAM] = current
    else:
        contents[NON_STREAM] = exporting.convert_features_int8(model, audio())
    contents[STREAM] = convert_stream_features_int8(model, audio(), clips=None)

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    metadata = {}
    for kind, content in contents.items():
        result = tflm_check(content) if check else None
        meta = micro_metadata(kind, content, model, labels, result)
        ident = c_identifier(f"{name}_{kind}")
        (out_dir / f"{ident}.tflite").write_bytes(content)
        write_c_array(content, out_dir, ident,
                      comment=f"{meta['size_bytes']} bytes; inputs, outputs and states: "
                              f"{ident}.json and README.md")
        meta["files"] = [f"{ident}{suffix}" for suffix in (".tflite", ".cc", ".h", ".json")]
        (out_dir / f"{ident}.json").write_text(json.dumps(meta, indent=2))
        metadata[kind] = meta
    (out_dir / "README.md").write_text(_readme(name, metadata))
    return metadata


def summary_markdown(metadata: Mapping[str, Mapping]) -> str:
    """A Markdown table of ``export_micro``'s models: size, TFLM arena, the MFCC input."""
    rows = ["| model | bytes | TensorFlow Lite Micro | input (int8) | files |",
            "|---|---:|---|---|---|"]
    for kind, meta in metadata.items():
        tflm = meta.get("tflm")
        if tflm is None:
            runs = "not checked (pip install tflite-micro)"
        elif tflm.get("runs"):
            runs = f"runs, arena {tflm['arena_min_bytes'] / 1024:.1f} KB"
        else:
            runs = f"fails: {tflm.get('error')}"
        spec = meta["inputs"][FEATURES_INPUT]
        shape = "x".join(str(d) for d in spec["shape"])
        files = ", ".join(meta.get("files", []))
        rows.append(f"| {kind} | {meta['size_bytes']:,} | {runs} | MFCCs {shape}, scale "
                    f"{spec['scale']:.4g}, zero point {spec['zero_point']} | {files} |")
    return "\n".join(rows)


