"""TFLite Micro against LiteRT on the same int8 MFCCs, and the streaming features-in model against
the non-stream one: how many int8 steps apart their logits are and how often their argmaxes agree."""
from __future__ import annotations

from typing import Iterable, Mapping

import numpy as np

from kwsnb import streaming
from kwsnb.micro.runtime import NON_STREAM, STREAM, TFLMRunner, tflm_check
from kwsnb.streaming import FEATURES_INPUT, StreamRunner, dequantize, quantize
from kwsnb.tflite import convert, runtime
from kwsnb.tflite.runtime import TFLiteModel

# ---------------------------------------------------------------------------------------------
# Agreement between runtimes and between stream and non-stream
# ---------------------------------------------------------------------------------------------

def run_non_stream(runner, features_int8: np.ndarray) -> np.ndarray:
    """int8 logits [clips, labels] of a non-stream features-in model (LiteRT or TFLM runner)."""
    (name,) = runner.inputs
    outputs = [runner.run({name: clip[np.newaxis]}) for clip in features_int8]
    return np.stack([next(iter(o.values()))[0] for o in outputs])


def run_stream(runner, features_int8: np.ndarray) -> np.ndarray:
    """Streams each clip's int8 frames ([clips, frames, dct]) through a streaming features-in
    model (LiteRT or TFLM runner) from zero states, by ``kwsnb.streaming.StreamRunner``'s one
    state rule; int8 logits after every frame, [clips, frames, labels]."""
    return StreamRunner(runner, packet_input=FEATURES_INPUT, raw=True).run_clips(
        features_int8, every_step=True)


def features_int8(model, audio: np.ndarray, input_details: Mapping) -> np.ndarray:
    """The model's float front end on ``audio`` [clips, samples], quantized for the
    features-in models' input: int8 [clips, frames, dct]."""
    front_end, _ = streaming.split_front_end(model)
    return quantize(convert.predict_batches(front_end, runtime.as_audio(audio)),
                    input_details)


def _agreement(litert: np.ndarray, tflm: np.ndarray) -> dict:
    """How far TFLM's int8 logits are from LiteRT's: max difference in int8 steps, share of
    logits that differ at all, share of argmaxes that agree (over the last axis)."""
    litert, tflm = litert.astype(int), tflm.astype(int)
    return {"max_step_difference": int(np.abs(litert - tflm).max()),
            "logits_differing": float(np.mean(litert != tflm)),
            "argmax_agreement": float(np.mean(litert.argmax(-1) == tflm.argmax(-1)))}


def compare(model, audio: np.ndarray, non_stream: bytes | None = None,
            stream: bytes | None = None, arena: bool = True,
            kernels: Iterable[str] = ("default", "reference")) -> dict:
    """TFLM against LiteRT for each given model on ``audio`` [clips, samples], and the stream
    against the non-stream model.

    The non-stream model gets each clip's int8 MFCCs; the streaming one the same frames one by
    one from zero states (its logits after every frame are compared). Returns ``{"features_int8":
    {...}, "stream_features_int8": {...}}``, each with ``tflm_check``'s fields, ``clips`` and,
    per LiteRT ``kernels`` (``LITERT_KERNELS``), ``max_step_difference``, ``logits_differing``,
    ``argmax_agreement`` (``..._reference`` etc.; the unsuffixed ones are the first kernels').
    The stream entry also has ``stream_vs_non_stream_max_steps`` (after the last frame, in the
    non-stream model's output steps; also ``_p99_steps`` and ``_mean_steps``: the two models
    are calibrated separately, so their output ranges differ and one may saturate where the
    other does not) and ``stream_vs_non_stream_argmax_agreement``.
    """
    kernels = list(kernels)
    results = {}
    io_non_stream = runtime.describe_io(non_stream) if non_stream is not None else None
    io_stream = runtime.describe_io(stream) if stream is not None else None
    reference_io = io_non_stream or io_stream
    features = features_int8(model, audio, next(iter(reference_io["inputs"].values())))

    def agreements(entry, litert_runs, tflm_run):
        for index, kind in enumerate(kernels):
            for key, value in _agreement(litert_runs[kind], tflm_run).items():
                entry[key if index == 0 else f"{key}_{kind}"] = value

    non_stream_logits = None
    if non_stream is not None:
        entry = tflm_check(non_stream, find_minimum=arena)
        if entry["runs"]:
            litert = {kind: run_non_stream(TFLiteModel(non_stream, kernels=kind), features)
                      for kind in kernels}
            agreements(entry, litert, run_non_stream(TFLMRunner(non_stream), features))
            entry["clips"] = len(audio)
            non_stream_logits = (litert[kernels[0]], next(iter(io_non_stream["outputs"].values())))
        results[NON_STREAM] = entry
    if stream is not None:
        entry = tflm_check(stream, find_minimum=arena)
        stream_input = io_stream["inputs"][FEATURES_INPUT]
        source = next(iter(reference_io["inputs"].values()))
        frames = features
        if (source["scale"], source["zero_point"]) != (stream_input["scale"],
                                                       stream_input["zero_point"]):
            frames = quantize(dequantize(features, source), stream_input)
            entry["input_requantized"] = True
        if entry["runs"]:
            litert = {kind: run_stream(TFLiteModel(stream, kernels=kind), frames)
                      for kind in kernels}
            tflm = run_stream(TFLMRunner(stream), frames)
            agreements(entry, litert, tflm)
            last = _agreement(litert[kernels[0]][:, -1], tflm[:, -1])
            entry.update(clips=len(audio), frames=int(frames.shape[1]),
                         max_step_difference_last_frame=last["max_step_difference"],
                         argmax_agreement_last_frame=last["argmax_agreement"])
            if non_stream_logits is not None:
                reference, details = non_stream_logits
                last = dequantize(litert[kernels[0]][:, -1], io_stream["outputs"]["logits"])
                steps = np.abs(last - dequantize(reference, details)) / details["scale"]
                entry.update(stream_vs_non_stream_max_steps=float(steps.max()),
                             stream_vs_non_stream_p99_steps=float(np.percentile(steps, 99)),
                             stream_vs_non_stream_mean_steps=float(steps.mean()),
                             stream_vs_non_stream_argmax_agreement=float(
                                 np.mean(last.argmax(-1) == reference.argmax(-1))),
                             same_output_quantization=bool(
                                 (io_stream["outputs"]["logits"]["scale"],
                                  io_stream["outputs"]["logits"]["zero_point"])
                                 == (details["scale"], details["zero_point"])))
        results[STREAM] = entry
    return results


