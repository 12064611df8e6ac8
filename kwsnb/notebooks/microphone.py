"""The microphone in a notebook: a recorder widget (``Recorder``, built on anywidget) and live
keyword detection over what it hears (``LiveDetector``).

The page does the browser's part: ``getUserMedia``, an ``AudioContext`` at 16 kHz where the
browser allows one (else its own rate, resampled here), a level meter, and clear messages when
there is no microphone or permission is refused. Audio comes back to Python as float32 buffers
in custom widget messages (``send``/``on_msg``: the same in ipywidgets 7.7 and 8, so Colab's
7.7.1 works too).

* ``mode="record"``: one press records ``seconds`` (1-3 s); ``recording`` holds it as a numpy
  array at 16 kHz and the ``on_recording`` callbacks get it.
* ``mode="live"``: the microphone streams until stopped; ``on_audio`` callbacks get each chunk
  (16 kHz). ``LiveDetector`` cuts the chunks into 20 ms packets for a streaming model through
  ``kwsnb.streaming.StreamRunner`` (the stream runner the rest of kwsnb uses), smooths and
  thresholds its probabilities with ``kwsnb.evaluate.detect``'s rules and draws a rolling chart in the
  widget. Stopping (the button, or ``stop()``) ends the tracks: the browser frees the microphone.
"""
from __future__ import annotations

from pathlib import Path
from typing import Callable, Sequence

import numpy as np

SAMPLE_RATE = 16000
CHART_SECONDS = 6.0  # the rolling chart's width

try:
    import anywidget
    import traitlets
except ImportError:  # kwsnb imports without it; Recorder() says what to install
    anywidget = None

_ESM = r"""
const MIC_MESSAGES = {
  NotAllowedError: "Microphone permission was refused. Allow the microphone for this page " +
    "(the icon at the left of the address bar; in Colab also the browser's site settings for " +
    "colab.research.google.com) and press the button again, or upload a recording instead.",
  SecurityError: "Microphone permission was refused. Allow the microphone for this page " +
    "and press the button again, or upload a recording instead.",
  NotFoundError: "No microphone found: plug one in (or pick one in the system's sound " +
    "settings) and press the button again, or upload a recording instead.",
  NotReadableError: "The microphone is busy or failed to start (another program may hold " +
    "it): close that program and press the button again.",
  NoMediaDevices: "This page cannot use a microphone: browsers allow one only on https:// or " +
    "http://localhost pages. Open the notebook through https or localhost, or upload a " +
    "recording instead.",
};

function micMessage(error) {
  return MIC_MESSAGES[error && error.name] ||
    `The microphone could not be opened (${error && error.name}: ${error && error.message}).`;
}

async function openMicrophone() {
  if (!navigator.mediaDevices || !navigator.mediaDevices.getUserMedia) {
    const error = new Error("navigator.mediaDevices is missing");
    error.name = "NoMediaDevices";
    throw error;
  }
  // The raw signal: the models were trained on unprocessed clips.
  const stream = await navigator.mediaDevices.getUserMedia({audio: {
    channelCount: 1, echoCancellation: false, noiseSuppression: false, autoGainControl: false}});
  let context, source;
  try {  // the browser resamples to 16 kHz (Chrome, Safari)
    context = new AudioContext({sampleRate: 16000});
    source = context.createMediaStreamSource(stream);
  } catch (error) {  // Firefox will not mix rates: its own rate, resampled in Python
    if (context) context.close();
    context = new AudioContext();
    source = context.createMediaStreamSource(stream);
  }
  await context.resume();
  // ScriptProcessorNode: deprecated but in every browser and needs no module file to load.
  const node = context.createScriptProcessor(2048, 1, 1);
  const mute = context.createGain();
  mute.gain.value = 0;  // the node runs only when connected to the output; nothing is heard
  source.connect(node);
  node.connect(mute);
  mute.connect(context.destination);
  return {stream, context, source, node, mute};
}

function closeMicrophone(mic) {
  if (!mic) return;
  mic.node.onaudioprocess = null;
  mic.source.disconnect();
  mic.node.disconnect();
  mic.mute.disconnect();
  mic.stream.getTracks().forEach(track => track.stop());  // frees the microphone
  mic.context.close();
}

const COLORS = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2",
                "#7f7f7f", "#bcbd22", "#17becf"];

function drawChart(canvas, chart) {
  const ctx = canvas.getContext("2d");
  const w = canvas.width, h = canvas.height, left = 34, bottom = 18, top = 8;
  const plotW = w - left - 110, plotH = h - top - bottom;
  ctx.clearRect(0, 0, w, h);
  ctx.font = "11px sans-serif";
  ctx.strokeStyle = "#999"; ctx.fillStyle = "#444";
  ctx.strokeRect(left, top, plotW, plotH);
  const end = chart.now, start = end - chart.window_s;
  const x = t => left + (t - start) / chart.window_s * plotW;
  const y = p => top + (1 - p) * plotH;
  for (const p of [0, 0.5, 1]) ctx.fillText(p.toFixed(1), 4, y(p) + 4);
  ctx.fillText(`${start.toFixed(1)} s`, left, h - 4);
  ctx.fillText(`${end.toFixed(1)} s`, left + plotW - 30, h - 4);
  ctx.setLineDash([5, 4]); ctx.strokeStyle = "#d62728";
  ctx.beginPath(); ctx.moveTo(left, y(chart.threshold)); ctx.lineTo(left + plotW, y(chart.threshold));
  ctx.stroke(); ctx.setLineDash([]);
  chart.labels.forEach((label, k) => {
    const color = COLORS[k % COLORS.length];
    ctx.strokeStyle = color; ctx.lineWidth = 1.5; ctx.beginPath();
    chart.times.forEach((t, i) => {
      const px = x(t), py = y(chart.probs[i][k]);
      if (i === 0) ctx.moveTo(px, py); else ctx.lineTo(px, py);
    });
    ctx.stroke();
    ctx.fillStyle = color; ctx.fillText(label, left + plotW + 8, top + 12 + 13 * k);
  });
  for (const [t, label] of chart.detections) {
    if (t < start) continue;
    const k = chart.labels.indexOf(label);
    ctx.fillStyle = COLORS[k % COLORS.length];
    ctx.beginPath(); ctx.moveTo(x(t), top + 2); ctx.lineTo(x(t) - 5, top + 12);
    ctx.lineTo(x(t) + 5, top + 12); ctx.fill();
    ctx.fillText(label, x(t) + 6, top + 24);
  }
}

function render({ model, el }) {
  el.classList.add("kwsnb-mic");
  el.innerHTML = `
    <div class="kwsnb-mic-row">
      <button class="kwsnb-mic-button jupyter-button"></button>
      <div class="kwsnb-mic-meter" title="input level"><div class="kwsnb-mic-level"></div></div>
      <span class="kwsnb-mic-status"></span>
    </div>
    <div class="kwsnb-mic-error" role="alert"></div>
    <canvas class="kwsnb-mic-chart" width="640" height="170"></canvas>
    <div class="kwsnb-mic-detections"></div>`;
  const button = el.querySelector(".kwsnb-mic-button");
  const level = el.querySelector(".kwsnb-mic-level");
  const status = el.querySelector(".kwsnb-mic-status");
  const errorBox = el.querySelector(".kwsnb-mic-error");
  const canvas = el.querySelector(".kwsnb-mic-chart");
  const detections = el.querySelector(".kwsnb-mic-detections");
  let mic = null, opening = false;

  const live = () => model.get("mode") === "live";
  function refresh() {
    const seconds = model.get("seconds");
    button.textContent = live() ? (mic ? "■ stop" : "● listen") :
      (mic ? `● recording ${seconds.toFixed(1)} s…` : `● record ${seconds.toFixed(1)} s`);
    button.disabled = opening || (!live() && !!mic);
    status.textContent = model.get("status");
    errorBox.textContent = model.get("error");
    errorBox.style.display = model.get("error") ? "block" : "none";
    canvas.style.display = live() ? "block" : "none";
  }
  function setTrait(name, value) { model.set(name, value); model.save_changes(); }
  function showLevel(samples) {
    let sum = 0;
    for (let i = 0; i < samples.length; i++) sum += samples[i] * samples[i];
    const db = 10 * Math.log10(sum / samples.length + 1e-10);  // dBFS; -60 dB shows empty
    level.style.width = `${Math.max(0, Math.min(100, (db + 60) / 60 * 100))}%`;
  }
  function stop(reason) {
    closeMicrophone(mic);
    mic = null;
    level.style.width = "0%";
    if (reason) setTrait("status", reason);
    refresh();
  }

  async function start() {
    opening = true;
    setTrait("error", "");
    refresh();
    try {
      mic = await openMicrophone();
    } catch (error) {
      opening = false;
      mic = null;
      setTrait("error", micMessage(error));
      model.send({kind: "error", name: String(error && error.name), message: micMessage(error)});
      refresh();
      return;
    }
    opening = false;
    const rate = mic.context.sampleRate;
    const wanted = Math.round(model.get("seconds") * rate);
    const chunks = [];
    let count = 0, sequence = 0;
    if (live()) {
      model.send({kind: "start", sample_rate: rate});
      setTrait("status", "listening…");
    } else {
      setTrait("status", "recording…");
    }
    mic.node.onaudioprocess = event => {
      const samples = new Float32Array(event.inputBuffer.getChannelData(0));
      showLevel(samples);
      if (live()) {
        model.send({kind: "audio", sample_rate: rate, sequence: sequence++}, undefined,
                   [samples.buffer]);
        return;
      }
      chunks.push(samples);
      count += samples.length;
      if (count >= wanted) {
        const clip = new Float32Array(wanted);
        let offset = 0;
        for (const chunk of chunks) {
          clip.set(chunk.subarray(0, Math.min(chunk.length, wanted - offset)), offset);
          offset += chunk.length;
          if (offset >= wanted) break;
        }
        stop();
        model.send({kind: "recording", sample_rate: rate}, undefined, [clip.buffer]);
      }
    };
    refresh();
  }

  button.addEventListener("click", () => {
    if (live() && mic) {
      stop("stopped: the microphone is free");
      model.send({kind: "stop"});
    } else if (!mic && !opening) {
      start();
    }
  });
  model.on("msg:custom", message => {
    if (message.kind === "stop" && mic) stop("stopped: the microphone is free");
    if (message.kind === "chart") {
      drawChart(canvas, message);
      detections.textContent = message.detections.length ?
        "detected: " + message.detections.map(([t, label, score]) =>
          `${label} at ${t.toFixed(1)} s (${score.toFixed(2)})`).join(", ") : "";
    }
  });
  for (const name of ["status", "error", "mode", "seconds"]) model.on(`change:${name}`, refresh);
  refresh();
  return () => closeMicrophone(mic);  // the view removed: free the microphone
}

export default { render };
"""

_CSS = """
.kwsnb-mic-row { display: flex; align-items: center; gap: 10px; }
.kwsnb-mic-button { min-width: 150px; }
.kwsnb-mic-meter { width: 120px; height: 10px; background: #eee; border: 1px solid #bbb; }
.kwsnb-mic-level { width: 0%; height: 100%; background: #2ca02c; transition: width 80ms; }
.kwsnb-mic-error { display: none; color: #b00020; margin: 6px 0; max-width: 640px; }
.kwsnb-mic-chart { margin-top: 6px; border: 1px solid #ddd; }
.kwsnb-mic-detections { font-family: sans-serif; margin-top: 4px; }
"""


def _resample(audio: np.ndarray, rate: int, sample_rate: int = SAMPLE_RATE) -> np.ndarray:
    """A whole recording at ``rate`` resampled to ``sample_rate`` (soxr, as kwsnb.data does)."""
    audio = np.asarray(audio, np.float32)
    if int(rate) == sample_rate:
        return audio
    import soxr

    return soxr.resample(audio, int(rate), sample_rate, quality="HQ").astype(np.float32)


if anywidget is not None:
    class Recorder(anywidget.AnyWidget):
        """A record button with a level meter; see the module's docstring.

        ``recording``: the last recording (float32, 16 kHz mono), None before the first.
        ``error``: the page's message when the microphone could not be opened ("" otherwise).
        """

        _esm = _ESM
        _css = _CSS
        mode = traitlets.Unicode("record").tag(sync=True)
        seconds = traitlets.Float(2.0).tag(sync=True)
        status = traitlets.Unicode("").tag(sync=True)
        error = traitlets.Unicode("").tag(sync=True)

        @traitlets.validate("seconds")
        def _check_seconds(self, proposal):
            if not 1.0 <= proposal["value"] <= 3.0:
                raise ValueError(f"seconds must be between 1 and 3, got {proposal['value']}")
            return proposal["value"]

        @traitlets.validate("mode")
        def _check_mode(self, proposal):
            if proposal["value"] not in ("record", "live"):
                raise ValueError(f"mode must be 'record' or 'live', not {proposal['value']!r}")
            return proposal["value"]

        def __init__(self, mode: str = "record", seconds: float = 2.0, **kwargs):
            super().__init__(mode=mode, seconds=float(seconds), **kwargs)
            self.recording: np.ndarray | None = None
            self._recording_callbacks: list[Callable[[np.ndarray], None]] = []
            self._audio_callbacks: list[Callable[[np.ndarray], None]] = []
            self._start_callbacks: list[Callable[[], None]] = []
            self._stream = None  # live audio at another rate: one resampler per listening
            self.on_msg(self._on_message)

        def __repr__(self) -> str:
            # What a static page (GitHub, the rendered notebooks) shows in place of the widget.
            return (f"Recorder(mode={self.mode!r}, seconds={self.seconds:g}): the microphone "
                    "widget; it shows in a running notebook")

        def on_recording(self, callback: Callable[[np.ndarray], None]) -> None:
            """``callback(clip)`` after each recording (record mode)."""
            self._recording_callbacks.append(callback)

        def on_audio(self, callback: Callable[[np.ndarray], None]) -> None:
            """``callback(chunk)`` for each chunk streamed (live mode, ~128 ms each)."""
            self._audio_callbacks.append(callback)

        def on_start(self, callback: Callable[[], None]) -> None:
            """``callback()`` when live listening starts (before its first chunk)."""
            self._start_callbacks.append(callback)

        def stop(self) -> None:
            """Stops live listening; the page ends the tracks, which frees the microphone."""
            self.send({"kind": "stop"})

        def _on_message(self, _, content, buffers) -> None:
            kind = content.get("kind")
            if kind == "start":
                self._stream = None
                for callback in self._start_callbacks:
                    callback()
            elif kind == "recording":
                audio = _resample(np.frombuffer(bytes(buffers[0]), np.float32),
                                  content["sample_rate"])
                self.recording = audio
                self.status = f"recorded {len(audio) / SAMPLE_RATE:.1f} s"
                for callback in self._recording_callbacks:
                    callback(audio)
            elif kind == "audio":
                audio = np.frombuffer(bytes(buffers[0]), np.float32)
                rate = int(content["sample_rate"])
                if rate != SAMPLE_RATE:  # chunk by chunk without seams: a streaming resampler
                    import soxr

                    if self._stream is None:
                        self._stream = soxr.ResampleStream(rate, SAMPLE_RATE, 1, dtype="float32")
                    audio = self._stream.resample_chunk(audio)
                for callback in self._audio_callbacks:
                    callback(audio)
else:
    class Recorder:  # noqa: D101 - stands in to say what to install
        def __init__(self, *args, **kwargs):
            raise ImportError("the microphone widget needs anywidget: pip install anywidget "
                              "(Colab has it)")


def operating_point(train_dir: str | Path | None = None) -> dict:
    """The detector's ``smoothing_ms`` and ``threshold``: those chosen on validation audio for
    this model's weights (``kwsnb.evaluate.operating_point.stored``: ``train_dir/detection.json``,
    written by the notebooks, ``kwsnb.demo`` and ``benchmarks/streaming_detection.py``) when
    there, else the defaults of ``kwsnb.evaluate.detect.detect``."""
    import inspect

    from kwsnb.evaluate import detect
    from kwsnb.evaluate import operating_point as chosen

    point = None if train_dir is None else chosen.stored(train_dir)
    if point is not None:
        return {key: point[key] for key in ("smoothing_ms", "threshold", "source")}
    defaults = inspect.signature(detect.detect).parameters
    return {"smoothing_ms": float(defaults["smoothing_ms"].default),
            "threshold": float(defaults["threshold"].default),
            "source": "kwsnb.evaluate.detect defaults"}


class LiveDetector:
    """Keyword detection over audio that arrives in pieces: ``feed(chunk)`` cuts it into the
    model's packets, steps a ``StreamRunner`` (zero states at the start), and keeps every
    packet's probabilities; ``smoothed()`` and ``detections()`` apply ``kwsnb.evaluate.detect``'s
    smoothing and firing rules to all of it, exactly as ``detect.detect`` does on a file.

    ``model``: a streaming .tflite (e.g. ``TRAIN_DIR/tflite_stream_external_int8/model.tflite``)
    or Keras streaming model.
    """

    def __init__(self, model, label_names: Sequence[str], *, smoothing_ms: float,
                 threshold: float, suppression_ms: float = 1000.0):
        from kwsnb.evaluate.detect import DEFAULT_IGNORE, open_stream_of

        self.runner, _, _ = open_stream_of(model)
        self.label_names = [str(name) for name in label_names]
        self.keywords = [name for name in self.label_names if name not in DEFAULT_IGNORE]
        self.smoothing_ms, self.threshold = float(smoothing_ms), float(threshold)
        self.suppression_ms = float(suppression_ms)
        self.packet_ms = 1000.0 * self.runner.packet_samples / SAMPLE_RATE
        self.reset()

    def reset(self) -> None:
        """A fresh stream: zero states, no history."""
        self.runner.reset()
        self._pending = np.zeros(0, np.float32)
        self._posteriors: list[np.ndarray] = []

    def feed(self, audio: np.ndarray) -> int:
        """Streams ``audio`` (16 kHz); returns how many packets it completed."""
        from scipy.special import softmax

        audio = np.concatenate([self._pending, np.asarray(audio, np.float32).reshape(-1)])
        size = self.runner.packet_samples
        count = len(audio) // size
        for packet in audio[:count * size].reshape(count, size):
            self._posteriors.append(softmax(self.runner.step(packet)))
        self._pending = audio[count * size:]
        return count

    @property
    def times_s(self) -> np.ndarray:
        """The end of each packet fed so far, in seconds."""
        return (np.arange(len(self._posteriors)) + 1) * self.packet_ms / 1000.0

    def smoothed(self) -> np.ndarray:
        from kwsnb.evaluate.detect import smooth_posteriors

        if not self._posteriors:
            return np.zeros((0, len(self.label_names)), np.float32)
        return smooth_posteriors(np.stack(self._posteriors), self.smoothing_ms, self.packet_ms)

    def detections(self) -> list[tuple[float, str, float]]:
        """(time_s, keyword, score) of every detection so far."""
        from kwsnb.evaluate.detect import find_detections

        if not self._posteriors:
            return []
        return find_detections(self.times_s, self.smoothed(), self.label_names,
                               threshold=self.threshold, suppression_ms=self.suppression_ms)

    def chart(self, window_s: float = CHART_SECONDS) -> dict:
        """What the widget draws: the keywords' smoothed probabilities over the last
        ``window_s`` seconds, the threshold and the detections."""
        times, smoothed = self.times_s, self.smoothed()
        keep = times > (times[-1] if len(times) else 0.0) - window_s
        columns = [self.label_names.index(name) for name in self.keywords]
        return {"kind": "chart", "now": float(times[-1]) if len(times) else 0.0,
                "window_s": window_s, "labels": self.keywords, "threshold": self.threshold,
                "times": np.round(times[keep], 3).tolist(),
                "probs": np.round(smoothed[keep][:, columns], 3).tolist(),
                "detections": [[round(t, 2), label, round(score, 3)]
                               for t, label, score in self.detections()]}


def live_detector(model, label_names: Sequence[str], *, smoothing_ms: float | None = None,
                  threshold: float | None = None, train_dir: str | Path | None = None):
    """A ``Recorder`` in live mode wired to a ``LiveDetector``: press "listen", speak, see the
    keywords' smoothed probabilities roll by with detections marked; "stop" frees the
    microphone. The operating point is ``operating_point(train_dir)`` unless given. Returns the
    widget; its ``detector`` attribute holds the ``LiveDetector``.
    """
    point = operating_point(train_dir)
    detector = LiveDetector(model, label_names,
                            smoothing_ms=point["smoothing_ms"] if smoothing_ms is None
                            else smoothing_ms,
                            threshold=point["threshold"] if threshold is None else threshold)
    widget = Recorder(mode="live")
    widget.detector = detector

    def on_audio(chunk):
        detector.feed(chunk)
        widget.send(detector.chart())

    widget.on_start(detector.reset)
    widget.on_audio(on_audio)
    return widget
