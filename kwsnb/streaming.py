"""Streaming: converting models between modes, and feeding audio to streaming models.

Conversion rebuilds the model in the other mode from its ``ModelSpec`` (kept by
``kwsnb.models.build``) and copies the weights by layer name; no Keras internals::

    model = kwsnb.models.build("tc_resnet")            # train it, or load its weights
    stream = to_stream_external(model)                 # or to_stream_internal / to_non_stream
    runner = StreamRunner(stream)                      # also takes a TFLite model
    logits = runner.run(audio)                         # one row per 320-sample packet

What "equal" means (docs/streaming.md): for models with valid padding (svdf, tc_resnet,
mobilenet, ...) the output after packet ``n >= 50`` equals the non-stream output on the last
second, ``audio[(n - 50) * 320 : n * 320]``. For causal models (svdf_resnet) the output after the
clip's last packet equals the non-stream output on the clip when the stream starts from
``reset(prime=clip[:320])``.

Long-audio detection (the last section): ``make_long_recording`` places test clips over
background noise with known word positions, ``detect`` streams a model over it (softmax,
moving-average smoothing, threshold, suppression) and reports false accepts per hour, miss rate
and a detection timeline (``DetectionResult.plot``); ``sweep_thresholds`` re-thresholds one run.
"""
from __future__ import annotations

import csv
import json
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import keras
import numpy as np

from kwsnb import models
from kwsnb.layers import (AUDIO_INPUT, FRONT_END, LOGITS, STATE_NAME, STATE_SUFFIX, Mode,
                          StreamingLayer, reset_states)


# ---------------------------------------------------------------------------------------------
# Conversion between modes
# ---------------------------------------------------------------------------------------------

def convert(model: keras.Model, mode: Mode | str) -> keras.Model:
    """``model`` rebuilt in ``mode`` (same architecture and flags) with its weights.

    Works between any two modes; streaming modes take one packet per call at batch size 1.
    """
    found = models.spec(model)
    converted = models.build(found.name, mode=mode, **found.flags)
    copy_weights(model, converted)
    return converted


def to_non_stream(model: keras.Model) -> keras.Model:
    """Non-stream inference: raw audio clips ``[batch, samples]`` -> logits."""
    return convert(model, Mode.NON_STREAM_INFERENCE)


def to_stream_internal(model: keras.Model) -> keras.Model:
    """Streaming with internal state: ``[1, 320]`` packet -> logits; ring buffers in variables
    (LiteRT: convert with ``experimental_enable_resource_variables = True``)."""
    return convert(model, Mode.STREAM_INTERNAL_STATE_INFERENCE)


def to_stream_external(model: keras.Model) -> keras.Model:
    """Streaming with external state: inputs ``[packet, *states]`` (``audio``, ``<layer>_state``),
    outputs a dict ``{"logits": ..., "<layer>_state": new state, ...}``."""
    return convert(model, Mode.STREAM_EXTERNAL_STATE_INFERENCE)


def exact_on_last_second(model: keras.Model) -> bool:
    """True when no time layer pads (valid padding throughout): then, from the 50th packet on,
    every stream output equals the non-stream output on the last second of audio. False for
    causal models, which match the non-stream model on a clip fed from a primed reset state."""
    return all(layer.padding != "causal" for layer in model.layers
               if isinstance(layer, StreamingLayer))


def _model_weights(layer: keras.layers.Layer) -> list:
    return [w for w in layer.weights if w.name != STATE_NAME]


def copy_weights(source: keras.Model, target: keras.Model) -> None:
    """Copies every weight (ring buffers excepted) from ``source`` to ``target`` by layer name."""
    for layer in target.layers:
        wanted = _model_weights(layer)
        if not wanted:
            continue
        try:
            given = _model_weights(source.get_layer(layer.name))
        except ValueError:
            raise ValueError(f"{source.name} has no layer {layer.name!r} to copy weights from; "
                             "were both models built by kwsnb.models.build?") from None
        if [tuple(w.shape) for w in given] != [tuple(w.shape) for w in wanted]:
            raise ValueError(f"layer {layer.name!r}: weights {[tuple(w.shape) for w in given]} "
                             f"do not fit {[tuple(w.shape) for w in wanted]}; the two models "
                             "were built with different flags")
        for variable, value in zip(wanted, given):
            variable.assign(value)


# ---------------------------------------------------------------------------------------------
# Running a stream
# ---------------------------------------------------------------------------------------------

class StreamRunner:
    """Feeds audio to a streaming model one packet at a time and keeps its state.

    ``model``: a Keras streaming model (internal or external state) from ``to_stream_*``, or a
    TFLite model converted from one (bytes, a path, or an ``ai_edge_litert`` Interpreter).
    External states are kept here and fed back on every call; internal ones live in the model.
    """

    def __init__(self, model, num_threads: int = 1):
        if isinstance(model, keras.Model):
            self._backend = _KerasStream(model)
        else:
            self._backend = _TFLiteStream(model, num_threads)
        self.packet_samples = self._backend.packet_samples
        self.reset()

    @property
    def external_state(self) -> bool:
        return self._backend.external

    def reset(self, prime: np.ndarray | None = None) -> None:
        """Starts a fresh stream: every ring buffer zero.

        ``prime``: the first packet of a clip, put straight into the front end's audio buffer
        without running the body. The next packet then yields the clip's first full frame, as
        in the non-stream model, which causal models need to match it exactly (docs/streaming.md).
        """
        self._backend.reset()
        if prime is not None:
            prime = np.asarray(prime, dtype=np.float32).reshape(-1)
            if prime.shape != (self.packet_samples,):
                raise ValueError(f"prime must be one packet of {self.packet_samples} samples, "
                                 f"got {prime.shape[0]}")
            self._backend.prime(prime)

    def step(self, packet: np.ndarray) -> np.ndarray:
        """Feeds one packet (``packet_samples`` samples); returns the logits after it."""
        packet = np.asarray(packet, dtype=np.float32).reshape(1, -1)
        if packet.shape[1] != self.packet_samples:
            raise ValueError(f"a packet is {self.packet_samples} samples, got {packet.shape[1]}")
        return self._backend.step(packet)

    def run(self, audio: np.ndarray) -> np.ndarray:
        """Feeds ``audio`` packet by packet (continuing the current stream); returns the logits
        after each packet, ``[packets, labels]``. A trailing part packet is ignored."""
        audio = np.asarray(audio, dtype=np.float32).reshape(-1)
        count = audio.shape[0] // self.packet_samples
        if count == 0:
            raise ValueError(f"audio of {audio.shape[0]} samples is shorter than one packet "
                             f"({self.packet_samples} samples)")
        packets = audio[:count * self.packet_samples].reshape(count, self.packet_samples)
        return np.stack([self.step(packet) for packet in packets])


class _KerasStream:
    def __init__(self, model: keras.Model):
        import tensorflow as tf

        mode = models.spec(model).mode
        if not mode.is_streaming:
            raise ValueError(f"{model.name} is a {mode.value} model; convert it first with "
                             "kwsnb.streaming.to_stream_internal or to_stream_external")
        self.model = model
        self.external = mode == Mode.STREAM_EXTERNAL_STATE_INFERENCE
        self.packet_samples = int(model.inputs[0].shape[1])
        self.state_names = [tensor.name for tensor in model.inputs[1:]]
        self._call = tf.function(lambda inputs: model(inputs, training=False))

    def reset(self):
        if self.external:
            self.states = [np.zeros(tensor.shape, np.float32) for tensor in self.model.inputs[1:]]
        else:
            reset_states(self.model)

    def prime(self, packet: np.ndarray):
        if self.external:
            self.states[self.state_names.index(FRONT_END + STATE_SUFFIX)] = packet[None]
        else:
            self.model.get_layer(FRONT_END).stream_state.assign(packet[None])

    def step(self, packet: np.ndarray) -> np.ndarray:
        if not self.external:
            return np.asarray(self._call(packet))[0]
        outputs = self._call([packet, *self.states])
        self.states = [np.asarray(outputs[name]) for name in self.state_names]
        return np.asarray(outputs[LOGITS])[0]


class _TFLiteStream:
    def __init__(self, model, num_threads: int):
        from ai_edge_litert.interpreter import Interpreter

        if isinstance(model, Interpreter):
            self.interpreter, self._make = model, None
        elif isinstance(model, (bytes, bytearray)):
            content = bytes(model)
            self._make = lambda: Interpreter(model_content=content, num_threads=num_threads)
        else:
            path = str(Path(model))
            self._make = lambda: Interpreter(model_path=path, num_threads=num_threads)
        if self._make is not None:
            self.interpreter = self._make()
        self.runner = self.interpreter.get_signature_runner()
        details = self.runner.get_input_details()
        if AUDIO_INPUT not in details:
            raise ValueError(f"the TFLite model has no {AUDIO_INPUT!r} input (inputs: "
                             f"{', '.join(details)}); convert a kwsnb streaming model")
        self.packet_samples = int(details[AUDIO_INPUT]["shape"][-1])
        self.state_specs = {name: d for name, d in details.items() if name != AUDIO_INPUT}
        self.external = bool(self.state_specs)

    def reset(self):
        self.states = {name: np.zeros(d["shape"], d["dtype"])
                       for name, d in self.state_specs.items()}
        if not self.external:
            # LiteRT's reset_all_variables() leaves resource variables (the ring buffers) as they
            # are (kwsnb.export), so a fresh stream needs a fresh interpreter (~0.5 ms).
            if self._make is None:
                raise ValueError("an internal-state model given as an Interpreter cannot be "
                                 "reset; give its .tflite path or bytes")
            self.interpreter = self._make()
            self.runner = self.interpreter.get_signature_runner()

    def prime(self, packet: np.ndarray):
        if not self.external:
            raise ValueError("an internal-state TFLite model keeps its audio buffer inside; it "
                             "cannot be primed (use the external-state model)")
        self.states[FRONT_END + STATE_SUFFIX] = packet[None]

    def step(self, packet: np.ndarray) -> np.ndarray:
        outputs = self.runner(**{AUDIO_INPUT: packet}, **self.states)
        if self.external:
            self.states = {name: outputs[name] for name in self.state_specs}
            return outputs[LOGITS][0]
        (logits,) = outputs.values()
        return logits[0]


# ---------------------------------------------------------------------------------------------
# Long audio: detections over a recording, false accepts per hour and miss rate
# ---------------------------------------------------------------------------------------------
#
# The measure a wake-word user needs: stream a model over minutes of audio in which words sit at
# known places, turn its posteriors into detections (smoothing, threshold, suppression) and count
# hits, misses and false accepts. Decisions:
#
# * Word positions are the speech extent of each clip (frames within SPEECH_TOP_DB of the clip's
#   loudest, as librosa.effects.trim): the clip's leading and trailing background is not "the word".
#   The extent plus WORD_MARGIN_S each side is placed, faded in and out, so the recording's gaps
#   are the background noise alone and ``gap_s`` is the silence between words.
# * ``noise_level`` is the background's RMS relative to the words' speech RMS (0.1: 20 dB SNR):
#   the official noise files are 10x quieter than the synthetic set's, so a gain would make the
#   same setting mean different things on different data.
# * A keyword fires when its smoothed posterior is at or above the threshold, it has been below
#   it since it last fired (one detection per excursion) and no detection happened in the last
#   ``suppression_ms``. Several keywords ready in one packet: the highest wins.
# * False accepts per hour divide by the whole recording's duration.

SPEECH_TOP_DB = 20.0
WORD_MARGIN_S = 0.1
WORD_FADE_S = 0.01
NOISE_CROSSFADE_S = 0.05
DEFAULT_TOLERANCE_S = 0.5
DEFAULT_IGNORE = ("_silence_", "_unknown_")  # kwsnb.data's SILENCE_LABEL, UNKNOWN_WORD_LABEL
_GRAPH_CHUNK_PACKETS = 1000  # packets per graph call (progress granularity; no retracing)


@dataclass
class LongRecording:
    """A long recording with the position of every word placed in it.

    ``audio`` float32 [samples]; ``events`` (start_s, end_s, label) of every word, in time order.
    """

    audio: np.ndarray = field(repr=False)
    sample_rate: int
    events: list[tuple[float, float, str]]

    @property
    def duration_s(self) -> float:
        return len(self.audio) / self.sample_rate

    def __repr__(self) -> str:
        return (f"LongRecording({self.duration_s:.1f} s at {self.sample_rate} Hz, "
                f"{len(self.events)} words)")

    def save(self, path) -> None:
        """Writes ``path`` (16-bit wav; ``.wav`` added when there is no suffix) and the events
        as ``<stem>.csv`` beside it (columns start_s, end_s, label)."""
        import soundfile

        path = Path(path)
        if not path.suffix:
            path = path.with_suffix(".wav")
        path.parent.mkdir(parents=True, exist_ok=True)
        soundfile.write(path, np.clip(self.audio, -1.0, 32767 / 32768), self.sample_rate,
                        subtype="PCM_16")
        with path.with_suffix(".csv").open("w", newline="") as handle:
            writer = csv.writer(handle)
            writer.writerow(["start_s", "end_s", "label"])
            writer.writerows([f"{start:.4f}", f"{end:.4f}", label]
                             for start, end, label in self.events)

    @classmethod
    def load(cls, path) -> "LongRecording":
        """Reads what :meth:`save` wrote: the audio file and ``<stem>.csv`` beside it."""
        import soundfile

        path = Path(path)
        events_path = path.with_suffix(".csv")
        if not path.is_file():
            raise FileNotFoundError(f"recording {path} not found")
        if not events_path.is_file():
            raise FileNotFoundError(f"{events_path} not found: a long recording needs its events "
                                    "file (LongRecording.save writes both)")
        audio, sample_rate = soundfile.read(path, dtype="float32", always_2d=True)
        with events_path.open(newline="") as handle:
            rows = list(csv.DictReader(handle))
        try:
            events = [(float(row["start_s"]), float(row["end_s"]), row["label"]) for row in rows]
        except (KeyError, TypeError, ValueError) as error:
            raise ValueError(f"{events_path}: expected columns start_s,end_s,label ({error})") \
                from None
        return cls(audio.mean(axis=1), int(sample_rate), events)


def speech_extent(clip: np.ndarray, sample_rate: int = 16000,
                  top_db: float = SPEECH_TOP_DB) -> tuple[int, int]:
    """(first, end) sample of the speech in ``clip``: from the first to the last 32 ms frame
    (8 ms hop) within ``top_db`` of the loudest frame's power, as ``librosa.effects.trim`` (whose
    first call costs seconds of imports). (0, 0) for a silent clip."""
    clip = np.asarray(clip, np.float32).reshape(-1)
    if not np.any(clip):
        return 0, 0
    frame = min(len(clip), max(16, int(0.032 * sample_rate)))
    hop = max(1, frame // 4)
    frames = np.lib.stride_tricks.sliding_window_view(clip, frame)[::hop]
    power = np.mean(frames.astype(np.float64) ** 2, axis=1)
    loud = np.flatnonzero(power >= power.max() * 10.0 ** (-top_db / 10.0))
    return int(loud[0] * hop), int(min(len(clip), loud[-1] * hop + frame))


def _noise_arrays(noise, sample_rate: int) -> list[np.ndarray]:
    """The noise recordings as float32 arrays, from an array, a list of arrays, a
    BackgroundNoise or a folder (a data folder's _background_noise_ or a folder of files)."""
    from kwsnb import data

    if isinstance(noise, data.BackgroundNoise):
        return [noise.samples[start:start + length]
                for start, length in zip(noise.starts, noise.lengths)]
    if isinstance(noise, (str, Path)):
        folder = Path(noise).expanduser()
        if (folder / data.BACKGROUND_NOISE_DIR_NAME).is_dir():
            folder = folder / data.BACKGROUND_NOISE_DIR_NAME
        if not folder.is_dir():
            raise FileNotFoundError(f"noise folder {folder} not found (give a data folder with "
                                    f"{data.BACKGROUND_NOISE_DIR_NAME}/, a folder of noise files, "
                                    "or arrays)")
        files = sorted(p for p in folder.iterdir()
                       if p.suffix.lower() in data.AUDIO_EXTENSIONS and p.is_file())
        loaded = data.BackgroundNoise.from_files(files, sample_rate)
        if not len(loaded):
            raise ValueError(f"no usable noise recordings (*.wav, *.flac longer than 1 s) in "
                             f"{folder}")
        return _noise_arrays(loaded, sample_rate)
    arrays = [noise] if isinstance(noise, np.ndarray) and noise.ndim == 1 else list(noise)
    arrays = [np.asarray(a, np.float32) for a in arrays]
    bad = [i for i, a in enumerate(arrays) if a.ndim != 1 or len(a) < sample_rate // 10]
    if not arrays or bad:
        raise ValueError("noise must be a 1-D array, a list of 1-D arrays (each at least 0.1 s), "
                         f"or a folder; got {len(arrays)} arrays, unusable: {bad}")
    silent = [i for i, a in enumerate(arrays) if not np.any(a)]
    if silent:
        raise ValueError(f"noise array(s) {silent} are all zeros")
    return arrays


def _noise_track(arrays: list[np.ndarray], samples: int, rng: np.random.Generator,
                 crossfade: int) -> np.ndarray:
    """``samples`` of noise at unit RMS: random stretches of random recordings (each first
    scaled to unit RMS), joined by equal-power crossfades of ``crossfade`` samples."""
    arrays = [a / np.sqrt(np.mean(a.astype(np.float64) ** 2)) for a in arrays]
    track = np.zeros(samples + crossfade, np.float64)
    position, overlap = 0, 0  # overlap: the previous stretch's fade-out, this one's fade-in

    def ramp(length):
        return np.linspace(0.0, np.pi / 2, length)

    while position < samples:
        source = arrays[rng.integers(len(arrays))]
        offset = int(rng.integers(0, max(1, len(source) // 2)))  # long stretches, few joins
        piece = source[offset:offset + samples - position + crossfade].astype(np.float64)
        overlap = min(overlap, len(piece))
        piece[:overlap] *= np.sin(ramp(overlap))
        fade_out = min(crossfade, (len(piece) - overlap) // 2)
        piece[len(piece) - fade_out:] *= np.cos(ramp(fade_out))
        track[position:position + len(piece)] += piece
        position += len(piece) - fade_out
        overlap = fade_out
    track = track[:samples]
    return (track / max(np.sqrt(np.mean(track ** 2)), 1e-12)).astype(np.float32)


def make_long_recording(audio, labels, label_names: Sequence[str], *, noise=None,
                        duration_s: float = 300.0, gap_s: tuple[float, float] = (1.0, 3.0),
                        noise_level: float = 0.1, seed: int = 0,
                        sample_rate: int = 16000) -> LongRecording:
    """A recording of ``duration_s`` with words placed at random gaps over background noise.

    ``audio`` [clips, samples] and int ``labels`` (indices into ``label_names``), e.g. from
    ``kwsnb.data.read_test_folder`` or ``SpeechCommands.arrays``. Every clip not labelled
    ``_silence_`` is a word (``_unknown_`` words included: they test false accepts); clips are
    drawn in a seeded random order, each used once before any is repeated. Each word's speech
    extent (:func:`speech_extent`) gives its event; ``gap_s`` (low, high) is the uniform random
    silence between one word's end and the next one's start.

    ``noise``: None (quiet), a 1-D array, a list of arrays, a ``kwsnb.data.BackgroundNoise`` or a
    folder (``<data>/_background_noise_`` or the data folder itself). ``noise_level``: the
    noise's RMS relative to the words' speech RMS (0.1 = 20 dB SNR).
    """
    audio = np.asarray(audio, np.float32)
    labels = np.asarray(labels).reshape(-1)
    label_names = [str(name) for name in label_names]
    if audio.ndim != 2 or not len(audio):
        raise ValueError(f"audio must be clips [clips, samples], got shape {audio.shape}")
    if len(labels) != len(audio):
        raise ValueError(f"{len(audio)} clips but {len(labels)} labels")
    if not np.issubdtype(labels.dtype, np.integer) or labels.min() < 0 or \
            labels.max() >= len(label_names):
        raise ValueError(f"labels must be integer indices into label_names ({len(label_names)} "
                         f"names), got {labels.dtype} values {labels.min()}..{labels.max()}")
    low, high = (float(g) for g in gap_s)
    if not 0 <= low <= high:
        raise ValueError(f"gap_s must be (low, high) seconds with 0 <= low <= high, got {gap_s}")
    if duration_s <= 0 or noise_level < 0:
        raise ValueError(f"duration_s must be > 0 and noise_level >= 0 (got {duration_s}, "
                         f"{noise_level})")
    from kwsnb.data import SILENCE_LABEL as silence

    words = np.flatnonzero([label_names[label] != silence for label in labels])
    if not len(words):
        raise ValueError(f"no word clips to place: every clip is labelled {silence!r}")

    rng = np.random.default_rng(seed)
    total = int(round(duration_s * sample_rate))
    margin = int(WORD_MARGIN_S * sample_rate)
    fade_ramp = np.sin(np.linspace(0.0, np.pi / 2, max(1, int(WORD_FADE_S * sample_rate)))) ** 2
    recording = np.zeros(total, np.float32)
    events, speech_energy, speech_samples = [], 0.0, 0
    extents: dict[int, tuple[int, int]] = {}
    order: list[int] = []
    empty_streak = 0
    start = int(round(rng.uniform(low, high) * sample_rate))
    while True:
        if not order:
            order = list(rng.permutation(words))
        index = int(order.pop())
        if index not in extents:
            extents[index] = speech_extent(audio[index], sample_rate)
        first, end = extents[index]
        if end <= first:  # a silent clip: nothing to place
            empty_streak += 1
            if empty_streak > len(words):
                raise ValueError("every word clip is silent (no speech found by energy)")
            continue
        empty_streak = 0
        clip = audio[index]
        piece_first, piece_end = max(0, first - margin), min(len(clip), end + margin)
        start = max(start, first - piece_first)  # the first word's margin must fit
        if start + (piece_end - first) > total:
            break
        piece = clip[piece_first:piece_end].copy()
        fade = min(len(fade_ramp), len(piece) // 2)
        piece[:fade] *= fade_ramp[:fade]
        piece[len(piece) - fade:] *= fade_ramp[:fade][::-1]
        offset = start - (first - piece_first)
        recording[offset:offset + len(piece)] += piece
        speech = clip[first:end].astype(np.float64)
        speech_energy += float(np.sum(speech ** 2))
        speech_samples += len(speech)
        word_end = start + (end - first)
        events.append((start / sample_rate, word_end / sample_rate, label_names[labels[index]]))
        start = word_end + int(round(rng.uniform(low, high) * sample_rate))
    if not events:
        raise ValueError(f"duration_s={duration_s} is too short for one word after a gap of "
                         f"{low}-{high} s")
    if noise is not None and noise_level > 0:
        speech_rms = np.sqrt(speech_energy / speech_samples)
        track = _noise_track(_noise_arrays(noise, sample_rate), total, rng,
                             int(NOISE_CROSSFADE_S * sample_rate))
        recording += track * np.float32(noise_level * speech_rms)
    return LongRecording(recording, int(sample_rate), events)


# -- running a model over a recording -----------------------------------------------------------

class _GraphStream:
    """An external-state Keras streaming model run as one TensorFlow graph per chunk of packets
    (a tf.while_loop carrying the states): ~15x faster than one eager call per packet."""

    def __init__(self, model: keras.Model):
        import tensorflow as tf

        found = models.spec(model)
        self.sample_rate = int(found.flags.get("sample_rate", 16000))
        self.label_count = int(found.flags["label_count"])
        if found.mode != Mode.STREAM_EXTERNAL_STATE_INFERENCE:
            model = to_stream_external(model)
        self.packet_samples = int(model.inputs[0].shape[1])
        self.labels = None
        state_inputs = model.inputs[1:]
        state_names = [tensor.name for tensor in state_inputs]
        self.state_shapes = [tuple(tensor.shape) for tensor in state_inputs]

        @tf.function(input_signature=[tf.TensorSpec([None, self.packet_samples], tf.float32)]
                     + [tf.TensorSpec(shape, tf.float32) for shape in self.state_shapes])
        def run_packets(packets, *states):
            count = tf.shape(packets)[0]

            def step(i, logits, states):
                outputs = model([packets[i][tf.newaxis], *states], training=False)
                return (i + 1, logits.write(i, outputs[LOGITS][0]),
                        [outputs[name] for name in state_names])

            _, logits, states = tf.while_loop(
                lambda i, *_: i < count, step,
                [tf.constant(0), tf.TensorArray(tf.float32, size=count), list(states)])
            return logits.stack(), states

        self._run_packets = run_packets

    def run(self, packets: np.ndarray, progress=None) -> np.ndarray:
        states = [np.zeros(shape, np.float32) for shape in self.state_shapes]
        logits = []
        for first in range(0, len(packets), _GRAPH_CHUNK_PACKETS):
            chunk, states = self._run_packets(packets[first:first + _GRAPH_CHUNK_PACKETS],
                                              *states)
            logits.append(chunk.numpy())
            if progress is not None:
                progress.update(len(logits[-1]))
        return np.concatenate(logits)


class _TFLiteLongStream:
    """A streaming .tflite (external state via metadata.json or matching names, or internal
    state), fed packet by packet from a fresh interpreter (zero states)."""

    def __init__(self, source):
        from kwsnb import export as exporting
        from kwsnb.evaluate import TFLiteModel

        metadata = {}
        if isinstance(source, (bytes, bytearray)):
            content, where, name = bytes(source), "the TFLite model", "model"
        else:
            path = Path(source).expanduser()
            if path.is_dir():
                path = path / exporting.MODEL_FILE
            content, where, name = exporting.read_tflite(path), str(path), path.parent.name
            metadata_path = path.parent / exporting.METADATA_FILE
            if metadata_path.is_file():
                try:
                    metadata = json.loads(metadata_path.read_text())
                except json.JSONDecodeError as error:
                    raise ValueError(f"{metadata_path} is not valid JSON ({error}); re-export "
                                     "the format") from None
        stream_formats = ", ".join(exporting.STREAM_FORMATS)
        format_name = metadata.get("format")
        if format_name in exporting.NON_STREAM_FORMATS:
            raise ValueError(f"{where} is a non-stream model ({format_name}); long-audio "
                             f"detection needs a streaming format: {stream_formats}")
        self.model = TFLiteModel(content, name)
        inputs, outputs = self.model.inputs, self.model.outputs
        self.labels = metadata.get("labels")
        self.sample_rate = int(metadata.get("feature_flags", {}).get("sample_rate", 16000))
        if len(inputs) > 1:  # external state
            self.packet_name = metadata.get("packet_input", AUDIO_INPUT)
            if "states" in metadata:
                self.pairs = [(s["input"], s["output"]) for s in metadata["states"]]
            else:  # kwsnb models name each new state like its input
                self.pairs = [(name, name) for name in inputs if name != self.packet_name]
            self.logits_name = metadata.get("logits_output", LOGITS)
            missing = sorted({self.packet_name, *(i for i, _ in self.pairs)} - set(inputs)
                             | ({self.logits_name, *(o for _, o in self.pairs)} - set(outputs)))
            if missing:
                raise ValueError(f"{where}: no input/output named {missing} (inputs "
                                 f"{list(inputs)}, outputs {list(outputs)}); is it a kwsnb "
                                 f"external-state streaming model ({stream_formats})?")
        else:
            ops = exporting.operator_names(content)
            if "VAR_HANDLE" not in ops:
                raise ValueError(f"{where} is a non-stream model (one input, no state); long-audio "
                                 f"detection needs a streaming format: {stream_formats}")
            self.packet_name, self.pairs = self.model.input_name, []
            self.logits_name = self.model.output_name
        self.packet_samples = int(inputs[self.packet_name]["shape"][-1])
        self.label_count = int(outputs[self.logits_name]["shape"][-1])

    def run(self, packets: np.ndarray, progress=None) -> np.ndarray:
        model = self.model.fresh()  # resource variables reset only with a new interpreter
        for name, _ in self.pairs:
            model.set(name, np.zeros(model.inputs[name]["shape"], np.float32))
        invoke, logits = model.interpreter.invoke, np.empty((len(packets), self.label_count),
                                                            np.float32)
        for i, packet in enumerate(packets):
            model.set(self.packet_name, packet[np.newaxis])
            invoke()
            for state_input, state_output in self.pairs:
                model.set(state_input, model.get(state_output))
            logits[i] = model.get(self.logits_name)[0]
            if progress is not None and (i + 1) % _GRAPH_CHUNK_PACKETS == 0:
                progress.update(_GRAPH_CHUNK_PACKETS)
        if progress is not None:
            progress.update(len(packets) % _GRAPH_CHUNK_PACKETS)
        return logits


def _long_audio_stream(model):
    if isinstance(model, keras.Model):
        return _GraphStream(model)
    if isinstance(model, (str, Path, bytes, bytearray)):
        return _TFLiteLongStream(model)
    raise TypeError(f"model must be a kwsnb Keras model or the path of a streaming .tflite (or "
                    f"its format folder), not {type(model).__name__}")


# -- posteriors to detections --------------------------------------------------------------------

def smooth_posteriors(posteriors: np.ndarray, smoothing_ms: float,
                      packet_ms: float = 20.0) -> np.ndarray:
    """Trailing moving average over ``smoothing_ms`` (``round(smoothing_ms / packet_ms)``
    packets, at least 1); the first packets average what there is so far."""
    if smoothing_ms < 0:
        raise ValueError(f"smoothing_ms must be >= 0, got {smoothing_ms}")
    posteriors = np.asarray(posteriors, np.float64)
    window = max(1, int(round(smoothing_ms / packet_ms)))
    sums = np.concatenate([np.zeros((1,) + posteriors.shape[1:]), np.cumsum(posteriors, axis=0)])
    ends = np.arange(1, len(posteriors) + 1)
    starts = np.maximum(0, ends - window)
    return ((sums[ends] - sums[starts]) / (ends - starts)[:, np.newaxis]).astype(np.float32)


def find_detections(times_s: np.ndarray, posteriors: np.ndarray, label_names: Sequence[str], *,
                    threshold: float, suppression_ms: float = 1000.0,
                    ignore: Sequence[str] = DEFAULT_IGNORE) -> list[tuple[float, str, float]]:
    """(time_s, label, score) of every detection in smoothed ``posteriors`` [packets, labels].

    A keyword (label not in ``ignore``) fires at a packet where its posterior is >= threshold,
    if it has been below the threshold since it last fired and no detection of any keyword
    happened in the preceding ``suppression_ms``; the highest of several ready keywords wins.
    """
    times_s = np.asarray(times_s, np.float64)
    posteriors = np.asarray(posteriors)
    keyword_ids = [i for i, name in enumerate(label_names) if name not in set(ignore)]
    if posteriors.ndim != 2 or posteriors.shape != (len(times_s), len(label_names)):
        raise ValueError(f"posteriors must be [packets, labels] = [{len(times_s)}, "
                         f"{len(label_names)}], got {posteriors.shape}")
    if not keyword_ids:
        raise ValueError(f"every label is ignored ({list(label_names)}): no keyword to detect")
    scores = posteriors[:, keyword_ids]
    above = scores >= threshold
    packet_index = np.arange(len(scores))[:, np.newaxis]
    # Last packet at or before each packet where the keyword was below the threshold.
    last_below = np.maximum.accumulate(np.where(above, -1, packet_index), axis=0)
    last_fired = np.full(len(keyword_ids), -2)
    suppression_s = suppression_ms / 1000.0
    blocked_until = -np.inf
    detections = []
    for i in np.flatnonzero(above.any(axis=1)):
        if times_s[i] < blocked_until - 1e-9:
            continue
        ready = above[i] & (last_below[i] > last_fired)
        if not ready.any():
            continue
        best = int(np.argmax(np.where(ready, scores[i], -np.inf)))
        last_fired[best] = i
        blocked_until = times_s[i] + suppression_s
        detections.append((float(times_s[i]), label_names[keyword_ids[best]],
                           float(scores[i, best])))
    return detections


def match_detections(detections: Sequence[tuple[float, str, float]],
                     events: Sequence[tuple[float, float, str]], keywords: Sequence[str], *,
                     tolerance_s: float = DEFAULT_TOLERANCE_S):
    """Matches detections to events: a detection is a hit when it falls in
    [start, end + tolerance_s] of a not yet matched event of its label (the one ending first).

    Returns (detection_hits: bool per detection, event_hits: per event True/False for events of
    ``keywords``, None for other events, which are only possible false-accept sources).
    """
    keywords = set(keywords)
    event_hits = [False if label in keywords else None for _, _, label in events]
    detection_hits = []
    for time_s, label, _ in sorted(detections, key=lambda d: d[0]):
        candidates = [k for k, (start, end, event_label) in enumerate(events)
                      if event_hits[k] is False and event_label == label
                      and start <= time_s <= end + tolerance_s]
        if candidates:
            event_hits[min(candidates, key=lambda k: events[k][1])] = True
        detection_hits.append(bool(candidates))
    return detection_hits, event_hits


@dataclass
class DetectionResult:
    """A model's detections over a long recording, matched against its events.

    ``posteriors`` are the smoothed softmax outputs [packets, labels] at ``times_s`` (end of each
    packet); ``detection_hits`` / ``event_hits`` say which detections matched and which keyword
    events were found (None: an event of an ignored label).
    """

    times_s: np.ndarray = field(repr=False)
    posteriors: np.ndarray = field(repr=False)
    label_names: list
    detections: list
    events: list = field(repr=False)
    hits: int
    misses: int
    false_accepts: int
    duration_s: float
    false_accepts_per_hour: float
    miss_rate: float
    detection_hits: list = field(default_factory=list, repr=False)
    event_hits: list = field(default_factory=list, repr=False)
    keywords: list = field(default_factory=list)
    settings: dict = field(default_factory=dict)
    raw_posteriors: np.ndarray | None = field(default=None, repr=False)
    packets_per_second: float | None = None

    @property
    def keyword_events(self) -> int:
        return self.hits + self.misses

    def summary(self) -> dict:
        """The numbers and the settings, as plain JSON-able values."""
        settings = {key: list(value) if isinstance(value, tuple) else value
                    for key, value in self.settings.items()}
        return {"duration_s": float(self.duration_s), "hours": float(self.duration_s / 3600),
                "keyword_events": int(self.keyword_events),
                "other_events": int(len(self.events) - self.keyword_events),
                "detections": len(self.detections), "hits": int(self.hits),
                "misses": int(self.misses), "false_accepts": int(self.false_accepts),
                "false_accepts_per_hour": float(self.false_accepts_per_hour),
                "miss_rate": float(self.miss_rate), "packets": int(len(self.times_s)),
                "packets_per_second": (None if self.packets_per_second is None
                                       else float(self.packets_per_second)),
                **settings}

    def plot(self, ax=None, max_seconds: float | None = None):
        """Timeline: each keyword's smoothed posterior, the threshold, event spans shaded and
        labelled (hatched when missed), detections marked (hit: triangle, false accept: x)."""
        import matplotlib.pyplot as plt
        from matplotlib.lines import Line2D
        from matplotlib.patches import Patch

        if ax is None:
            _, ax = plt.subplots(figsize=(14, 4))
        end = self.duration_s if max_seconds is None else min(float(max_seconds),
                                                               self.duration_s)
        shown = self.times_s <= end
        colors = {name: plt.get_cmap("tab10")(k % 10) for k, name in enumerate(self.keywords)}
        for name in self.keywords:
            ax.plot(self.times_s[shown], self.posteriors[shown, self.label_names.index(name)],
                    lw=1, color=colors[name], label=name)
        threshold = self.settings.get("threshold")
        if threshold is not None:
            ax.axhline(threshold, ls="--", lw=1, color="0.3")
        text_y = ax.get_xaxis_transform()  # x in seconds, y in axes fraction
        upright = end <= 30  # longer spans: labels turned vertical so that they do not overlap
        for (start, stop, label), found in zip(self.events, self.event_hits):
            if start > end:
                continue
            color = colors.get(label, "0.6")
            ax.axvspan(start, stop, color=color, alpha=0.15, lw=0)
            if found is False:
                ax.axvspan(start, stop, fill=False, hatch="///", edgecolor=color, lw=0,
                           alpha=0.8)
            ax.text((start + stop) / 2, 1.01, label, transform=text_y, ha="center",
                    va="bottom", fontsize=7, color=color if found is not None else "0.4",
                    rotation=0 if upright else 90)
        for (time_s, label, score), hit in zip(self.detections, self.detection_hits):
            if time_s <= end:
                ax.plot(time_s, score, "v" if hit else "x", ms=8, mew=2,
                        color="green" if hit else "red")
        handles, _ = ax.get_legend_handles_labels()
        handles += [Line2D([], [], ls="--", color="0.3", label=f"threshold {threshold:g}"),
                    Line2D([], [], ls="", marker="v", color="green", label="hit"),
                    Line2D([], [], ls="", marker="x", mew=2, color="red", label="false accept"),
                    Patch(facecolor="none", edgecolor="0.4", hatch="///", lw=0,
                          label="missed word")]
        ax.legend(handles=handles, loc="upper left", bbox_to_anchor=(1.0, 1.0), fontsize=8)
        ax.set_xlim(0, end)
        ax.set_ylim(0, 1.05)
        ax.set_xlabel("time (s)")
        ax.set_ylabel(f"posterior, {self.settings.get('smoothing_ms', 0):g} ms average")
        ax.set_title(f"{self.hits} of {self.keyword_events} keywords found, "
                     f"{self.false_accepts} false accept{'' if self.false_accepts == 1 else 's'} "
                     f"({self.false_accepts_per_hour:.1f}/h) in {self.duration_s / 60:.1f} min",
                     pad=16 if upright else 50)
        return ax


def score_posteriors(times_s: np.ndarray, posteriors: np.ndarray, label_names: Sequence[str],
                     events: Sequence[tuple[float, float, str]], duration_s: float, *,
                     threshold: float = 0.6, suppression_ms: float = 1000.0,
                     tolerance_s: float = DEFAULT_TOLERANCE_S,
                     ignore: Sequence[str] = DEFAULT_IGNORE, smoothing_ms: float = 0.0,
                     raw_posteriors: np.ndarray | None = None) -> DetectionResult:
    """Detections (:func:`find_detections`) on already smoothed ``posteriors``, matched against
    ``events`` (:func:`match_detections`) and counted. ``smoothing_ms`` is only recorded."""
    label_names = [str(name) for name in label_names]
    ignore = tuple(ignore)
    keywords = [name for name in label_names if name not in ignore]
    events = [(float(start), float(end), str(label)) for start, end, label in events]
    _check_keyword_events(events, keywords)
    if duration_s <= 0:
        raise ValueError(f"duration_s must be > 0, got {duration_s}")
    detections = find_detections(times_s, posteriors, label_names, threshold=threshold,
                                 suppression_ms=suppression_ms, ignore=ignore)
    detection_hits, event_hits = match_detections(detections, events, keywords,
                                                  tolerance_s=tolerance_s)
    hits = sum(detection_hits)
    keyword_events = sum(hit is not None for hit in event_hits)
    false_accepts = len(detections) - hits
    return DetectionResult(
        times_s=np.asarray(times_s), posteriors=np.asarray(posteriors), label_names=label_names,
        detections=detections, events=events, hits=hits, misses=keyword_events - hits,
        false_accepts=false_accepts, duration_s=float(duration_s),
        false_accepts_per_hour=false_accepts * 3600.0 / duration_s,
        miss_rate=(keyword_events - hits) / keyword_events, detection_hits=detection_hits,
        event_hits=event_hits, keywords=keywords,
        settings={"smoothing_ms": float(smoothing_ms), "threshold": float(threshold),
                  "suppression_ms": float(suppression_ms), "tolerance_s": float(tolerance_s),
                  "ignore": ignore},
        raw_posteriors=raw_posteriors)


def _check_keyword_events(events, keywords: list[str]) -> None:
    if not any(label in keywords for _, _, label in events):
        labels = sorted({label for _, _, label in events})
        raise ValueError(f"the recording has no events of the keywords {keywords} (its events' "
                         f"labels: {labels or 'none'}); the miss rate needs keyword words in it: "
                         f"make it with make_long_recording from clips of those labels")


def _as_recording(recording) -> LongRecording:
    if isinstance(recording, LongRecording):
        return recording
    if isinstance(recording, (str, Path)):
        return LongRecording.load(recording)
    raise TypeError(f"recording must be a LongRecording (make_long_recording) or the path of "
                    f"one saved with LongRecording.save, not {type(recording).__name__}")


def detect(model, recording, label_names: Sequence[str], *, smoothing_ms: float = 200.0,
           threshold: float = 0.6, suppression_ms: float = 1000.0,
           tolerance_s: float = DEFAULT_TOLERANCE_S, ignore: Sequence[str] = DEFAULT_IGNORE,
           progress: bool = False) -> DetectionResult:
    """Streams ``model`` over ``recording`` packet by packet and scores its detections.

    ``model``: a kwsnb Keras model in any mode (run as an external-state stream inside one
    TensorFlow graph), or a streaming .tflite / its format folder (``tflite_stream_external_*``
    through metadata.json, ``tflite_stream_internal_float``). The stream starts from zero
    states (causal models such as svdf_resnet then see the real history, not the zero padding
    they were trained with). Posteriors are the softmax of the logits after each 320-sample
    packet, smoothed by a trailing ``smoothing_ms`` average; see :func:`find_detections` for when
    a keyword fires and :func:`match_detections` for hits (``tolerance_s`` after a word's end
    still counts). Events of ``ignore`` labels (placed ``_unknown_`` words) are never misses,
    only possible false-accept sources. ``result.packets_per_second`` records the speed.
    """
    from scipy.special import softmax

    recording = _as_recording(recording)
    label_names = [str(name) for name in label_names]
    stream = _long_audio_stream(model)
    if stream.label_count != len(label_names):
        raise ValueError(f"label_names has {len(label_names)} names but the model outputs "
                         f"{stream.label_count} logits")
    if stream.labels and list(stream.labels) != label_names:
        raise ValueError(f"label_names {label_names} differ from the model's labels "
                         f"{list(stream.labels)} (metadata.json)")
    if recording.sample_rate != stream.sample_rate:
        raise ValueError(f"the recording is at {recording.sample_rate} Hz but the model expects "
                         f"{stream.sample_rate} Hz: resample it (soxr.resample) or make it with "
                         f"make_long_recording(..., sample_rate={stream.sample_rate})")
    _check_keyword_events(recording.events, [n for n in label_names if n not in set(ignore)])
    audio = np.asarray(recording.audio, np.float32).reshape(-1)
    count = len(audio) // stream.packet_samples
    if count == 0:
        raise ValueError(f"the recording ({len(audio)} samples) is shorter than one packet")
    packets = audio[:count * stream.packet_samples].reshape(count, stream.packet_samples)
    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=count, desc="streaming", unit="packet", leave=False)
    started = time.perf_counter()
    try:
        logits = stream.run(packets, bar)
    finally:
        if bar is not None:
            bar.close()
    elapsed = time.perf_counter() - started
    raw = softmax(logits.astype(np.float64), axis=-1).astype(np.float32)
    packet_ms = 1000.0 * stream.packet_samples / recording.sample_rate
    times_s = np.arange(1, count + 1) * (stream.packet_samples / recording.sample_rate)
    result = score_posteriors(times_s, smooth_posteriors(raw, smoothing_ms, packet_ms),
                              label_names, recording.events, recording.duration_s,
                              threshold=threshold, suppression_ms=suppression_ms,
                              tolerance_s=tolerance_s, ignore=ignore, smoothing_ms=smoothing_ms,
                              raw_posteriors=raw)
    result.packets_per_second = count / max(elapsed, 1e-9)
    return result


def rescore(result: DetectionResult, *, smoothing_ms: float | None = None,
            threshold: float | None = None, suppression_ms: float | None = None,
            tolerance_s: float | None = None) -> DetectionResult:
    """``result`` with other settings, without running the model again (a new smoothing needs
    ``result.raw_posteriors``, which :func:`detect` keeps)."""
    settings = dict(result.settings)
    posteriors = result.posteriors
    if smoothing_ms is not None and smoothing_ms != settings.get("smoothing_ms"):
        if result.raw_posteriors is None:
            raise ValueError("this result has no raw posteriors to smooth again")
        packet_ms = 1000.0 * float(result.times_s[0]) if len(result.times_s) else 20.0
        posteriors = smooth_posteriors(result.raw_posteriors, smoothing_ms, packet_ms)
        settings["smoothing_ms"] = smoothing_ms
    for key, value in (("threshold", threshold), ("suppression_ms", suppression_ms),
                       ("tolerance_s", tolerance_s)):
        if value is not None:
            settings[key] = value
    rescored = score_posteriors(result.times_s, posteriors, result.label_names, result.events,
                                result.duration_s, raw_posteriors=result.raw_posteriors,
                                **settings)
    rescored.packets_per_second = result.packets_per_second
    return rescored


_SWEEP_KEYS = ("threshold", "detections", "hits", "misses", "false_accepts",
               "false_accepts_per_hour", "miss_rate")


def sweep_thresholds(result_or_posteriors, thresholds: Sequence[float] | None = None, *,
                     times_s: np.ndarray | None = None, label_names: Sequence[str] | None = None,
                     events: Sequence[tuple[float, float, str]] | None = None,
                     duration_s: float | None = None, packet_ms: float = 20.0,
                     **settings) -> list[dict]:
    """False accepts per hour against miss rate at each threshold, from one run.

    Give a :class:`DetectionResult` (its posteriors and settings are re-used; ``settings`` may
    override suppression_ms / tolerance_s), or smoothed posteriors [packets, labels] with
    ``label_names``, ``events`` and optionally ``times_s`` (default: end of each ``packet_ms``
    packet) and ``duration_s`` (default: the last time). ``thresholds`` default to 0.05 ... 0.95.
    Returns one dict per threshold (threshold, detections, hits, misses, false_accepts,
    false_accepts_per_hour, miss_rate).
    """
    if thresholds is None:
        thresholds = np.round(np.arange(0.05, 0.96, 0.05), 2)
    if isinstance(result_or_posteriors, DetectionResult):
        results = [rescore(result_or_posteriors, threshold=float(t), **settings)
                   for t in thresholds]
    else:
        if label_names is None or events is None:
            raise ValueError("sweeping raw posteriors needs label_names and events (or pass a "
                             "DetectionResult)")
        posteriors = np.asarray(result_or_posteriors)
        if times_s is None:
            times_s = np.arange(1, len(posteriors) + 1) * packet_ms / 1000.0
        if duration_s is None:
            duration_s = float(times_s[-1])
        results = [score_posteriors(times_s, posteriors, label_names, events, duration_s,
                                    threshold=float(t), **settings) for t in thresholds]
    return [{key: value for key, value in result.summary().items() if key in _SWEEP_KEYS}
            for result in results]
