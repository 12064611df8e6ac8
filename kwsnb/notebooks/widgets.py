"""Interactive notebook views: listen to clips, browse a data folder, classify a clip, an
uploaded file or a recording from the microphone (``kwsnb.notebooks.microphone``: the recorder widget and
live detection).

The controls are ipywidgets; what they show (audio players, figures) are ordinary notebook
outputs updated in place through display handles, not ``ipywidgets.Output`` areas. So:

* the first view is a plain output, visible in any viewer (GitHub, nbviewer, a PDF export);
* a headless run (papermill, nbclient) executes them like any cell (an ``Output`` widget there
  makes nbclient exchange comm messages with the kernel during the cell, which hangs runs at
  random with ipykernel 7);
* without ipywidgets, or with ``interactive=False``, only the first view is shown.

Each function returns its controls (an ipywidgets box), or None when it shows the first view
only.
"""
from __future__ import annotations

import tempfile
import warnings
from pathlib import Path
from typing import Callable, Mapping, Sequence

import matplotlib.pyplot as plt
import numpy as np

from kwsnb.notebooks import plots

SAMPLE_RATE = 16000


def _ipywidgets():
    try:
        import ipywidgets
    except ImportError:
        return None
    return ipywidgets


def _audio(clip: np.ndarray, sample_rate: int = SAMPLE_RATE):
    from IPython.display import Audio

    # normalize=False plays the clip at its recorded level (quiet clips sound quiet).
    return Audio(np.clip(np.asarray(clip, np.float32), -1, 1), rate=sample_rate, normalize=False)


def _detached(figure):
    """``figure`` taken out of pyplot's care: shown only where it is displayed, not again when
    the cell ends."""
    plt.close(figure)
    return figure


class _View:
    """Display handles, shown once and updated in place: ``show(audio, figure)`` replaces what
    the previous call showed."""

    def __init__(self):
        self.handles = None

    def show(self, *objects) -> None:
        from IPython.display import display

        if self.handles is None:
            self.handles = [display(obj, display_id=True) for obj in objects]
            return
        # Last first: the caption (shown first) changes when everything below it has.
        for handle, obj in reversed(list(zip(self.handles, objects))):
            handle.update(obj)


# ---------------------------------------------------------------------------------------------
# Listening
# ---------------------------------------------------------------------------------------------

def audio_row(clips: Mapping[str, np.ndarray], sample_rate: int = SAMPLE_RATE):
    """Audio players side by side, one per named clip (plain HTML: no widget needed)."""
    from html import escape

    from IPython.display import HTML, display

    cells = "".join(
        f'<div style="margin:0 12px 8px 0"><div><b>{escape(str(name))}</b></div>'
        f"{_audio(clip, sample_rate)._repr_html_()}</div>" for name, clip in clips.items())
    display(HTML(f'<div style="display:flex;flex-wrap:wrap">{cells}</div>'))


# ---------------------------------------------------------------------------------------------
# Browsing a data folder
# ---------------------------------------------------------------------------------------------

def _load(path: Path, sample_rate: int) -> np.ndarray:
    from kwsnb.data import load_clip

    clip = load_clip(path, sample_rate=sample_rate)
    return np.zeros(sample_rate, np.float32) if clip is None else clip


def _clip_figure(path: Path, clip: np.ndarray, sample_rate: int, feature_flags: dict):
    figure = plots.waveforms_and_mfccs([clip], [f"{path.parent.name}/{path.name}"],
                                       sample_rate, **feature_flags)
    figure.set_size_inches(5, 4.6)
    return _detached(figure)


def clip_browser(data_dir, sample_rate: int = SAMPLE_RATE, interactive: bool = True,
                 **feature_flags):
    """Pick a word and a clip of a Speech Commands-layout folder; hear it and see its waveform
    and MFCCs (``feature_flags``: the seed's names, e.g. ``dct_num_features=30``)."""
    from IPython.display import display

    from kwsnb.data import scan_folder

    from IPython.display import Markdown

    folder = scan_folder(data_dir)
    words = sorted(folder.words)
    view = _View()

    def show(word: str, index: int) -> None:
        path = folder.words[word][index]
        clip = _load(path, sample_rate)
        caption = Markdown(f"**{word}**, clip {index + 1} of {len(folder.words[word])}: "
                           f"`{path.parent.name}/{path.name}`")
        view.show(caption, _audio(clip, sample_rate),
                  _clip_figure(path, clip, sample_rate, feature_flags))

    widgets = _ipywidgets() if interactive else None
    controls = None
    if widgets is not None:
        word = widgets.Dropdown(options=words, description="word")
        index = widgets.IntSlider(min=0, max=len(folder.words[words[0]]) - 1, description="clip",
                                  continuous_update=False)

        def on_word(_):
            index.max = len(folder.words[word.value]) - 1
            index.value = min(index.value, index.max)
            show(word.value, index.value)

        word.observe(on_word, names="value")
        index.observe(lambda _: show(word.value, index.value), names="value")
        controls = widgets.HBox([word, index])
        display(controls)
    show(words[0], 0)
    return controls


# ---------------------------------------------------------------------------------------------
# Classifying clips
# ---------------------------------------------------------------------------------------------

def predictor(model) -> Callable[[np.ndarray], np.ndarray]:
    """A function clip ``[samples]`` -> probabilities ``[labels]`` for a Keras non-stream model,
    or a non-stream raw-audio ``.tflite`` file (e.g. ``TRAIN_DIR/tflite_int8/model.tflite``)."""
    if isinstance(model, (str, Path)):
        from kwsnb.tflite import runtime

        runner = runtime.TFLiteModel(runtime.read_tflite(model), Path(model).parent.name)

        def predict(clip):
            logits = runtime.predict_non_stream(runner, np.asarray(clip, np.float32)[None])
            return plots.softmax(logits[0])
        return predict

    def predict(clip):
        return plots.softmax(model.predict(np.asarray(clip, np.float32)[None], verbose=0)[0])
    return predict


def loudest_second(audio: np.ndarray, clip_samples: int = SAMPLE_RATE) -> np.ndarray:
    """The ``clip_samples`` window of ``audio`` with the most energy (zero-padded if shorter)."""
    audio = np.asarray(audio, np.float32).reshape(-1)
    if len(audio) <= clip_samples:
        return np.pad(audio, (0, clip_samples - len(audio)))
    energy = np.concatenate([[0.0], np.cumsum(audio.astype(np.float64) ** 2)])
    start = int(np.argmax(energy[clip_samples:] - energy[:-clip_samples]))
    return audio[start:start + clip_samples]


def read_upload(name: str, content: bytes, sample_rate: int = SAMPLE_RATE) -> np.ndarray:
    """An uploaded audio file (any format libsndfile reads) as one 1 s clip: mono, resampled
    to ``sample_rate``, its loudest second. ValueError naming the file if it cannot be read."""
    from kwsnb.data import AudioFileWarning, load_clip

    # Through a file with the upload's suffix, so libsndfile sees what format it is. The
    # loader's warnings would name the temporary file; an unreadable upload is reported below.
    with tempfile.NamedTemporaryFile(suffix=Path(name).suffix or ".wav") as file, \
            warnings.catch_warnings():
        warnings.simplefilter("ignore", AudioFileWarning)
        file.write(bytes(content))
        file.flush()
        audio = load_clip(file.name, sample_rate=sample_rate, clip_samples=None)
    if audio is None:
        raise ValueError(f"{name}: not an audio file libsndfile can read (try .wav or .flac)")
    return loudest_second(audio, sample_rate)


def _prediction_figure(probs, clip, label_names, title, true_label, sample_rate):
    figure, (wave_ax, bar_ax) = plt.subplots(1, 2, figsize=(11, 0.28 * len(label_names) + 1.4),
                                             layout="constrained",
                                             gridspec_kw={"width_ratios": [1.3, 1]})
    wave_ax.plot(np.arange(len(clip)) / sample_rate, clip, linewidth=0.5)
    wave_ax.set(xlabel="time (s)", ylabel="amplitude", title=title)
    plots.probabilities(probs, label_names, ax=bar_ax, true_label=true_label)
    return _detached(figure)


def classifier(model, clips: Sequence[np.ndarray], label_names: Sequence[str],
               clip_labels: Sequence[int] | None = None, sample_rate: int = SAMPLE_RATE,
               interactive: bool = True, max_clips: int = 200, record: bool = True):
    """Pick one of ``clips``, upload an audio file or record one; hear it and see the model's
    probabilities.

    ``model``: a Keras non-stream model or a raw-audio ``.tflite`` file (see ``predictor``).
    ``clip_labels``: the true label index of each clip (shown in the list and outlined in the
    chart). Uploads and recordings longer than a second are cut to their loudest second.
    ``record``: a microphone recorder beside the upload button (``kwsnb.notebooks.microphone.Recorder``;
    left out, with a note, where anywidget is not installed).
    """
    from IPython.display import Markdown, display

    predict = predictor(model)
    clips = list(clips)[:max_clips]
    if not clips:
        raise ValueError("no clips to choose from")
    names = [f"#{i}" + (f" ({label_names[clip_labels[i]]})" if clip_labels is not None else "")
             for i in range(len(clips))]
    view = _View()

    def show(clip, title, true_label=None):
        probs = predict(clip)
        figure = _prediction_figure(probs, clip, label_names, title, true_label, sample_rate)
        best = int(np.argmax(probs))
        verdict = f"**{title}**: the model says **{label_names[best]}** ({100 * probs[best]:.0f}%)"
        if true_label is not None:
            verdict += " — right" if best == true_label else \
                f" — wrong, it is {label_names[true_label]}"
        view.show(Markdown(verdict), _audio(clip, sample_rate), figure)

    def show_clip(i: int):
        show(clips[i], f"clip {names[i]}", None if clip_labels is None else int(clip_labels[i]))

    widgets = _ipywidgets() if interactive else None
    controls = None
    if widgets is not None:
        choice = widgets.Dropdown(options=list(zip(names, range(len(clips)))), description="clip")
        upload = widgets.FileUpload(accept="audio/*,.wav,.flac,.ogg", multiple=False,
                                    description="upload")

        def on_upload(change):
            files = change["new"]
            if not files:
                return
            item = files[0] if isinstance(files, (list, tuple)) else next(iter(files.values()))
            try:
                clip = read_upload(item["name"], item["content"], sample_rate)
            except ValueError as error:
                view.show(Markdown(f"**{error}**"), Markdown(""), Markdown(""))
                return
            show(clip, f"upload: {item['name']}")

        choice.observe(lambda change: show_clip(change["new"]), names="value")
        upload.observe(on_upload, names="value")
        row = [choice, upload]
        recorder = _recorder() if record else None
        if recorder is not None:
            recorder.on_recording(lambda audio: show(loudest_second(audio, sample_rate),
                                                     "recorded"))
            row.append(recorder)
        controls = widgets.HBox(row)
        display(controls)
    show_clip(0)
    return controls


# ---------------------------------------------------------------------------------------------
# The microphone
# ---------------------------------------------------------------------------------------------

def _recorder(**kwargs):
    """A ``kwsnb.notebooks.microphone.Recorder``, or None (with a printed note) without anywidget."""
    from kwsnb.notebooks import microphone

    try:
        return microphone.Recorder(**kwargs)
    except ImportError as error:
        print(f"(no microphone: {error})")
        return None


def recorder(seconds: float = 2.0):
    """A record button (``seconds``: 1-3) with a level meter; after each recording its
    ``recording`` attribute holds the audio at 16 kHz and ``on_recording(callback)`` callbacks
    get it. Display it (the cell's last value). None, with a note, without anywidget."""
    return _recorder(mode="record", seconds=seconds)


def live_detector(stream_model, label_names: Sequence[str], **kwargs):
    """Live keyword detection from the microphone with a streaming model (e.g.
    ``TRAIN_DIR/tflite_stream_external_int8``): see ``kwsnb.notebooks.microphone.live_detector``. None,
    with a note, without anywidget."""
    from kwsnb.notebooks import microphone

    try:
        return microphone.live_detector(stream_model, label_names, **kwargs)
    except ImportError as error:
        print(f"(no microphone: {error})")
        return None


def recording_vs_data(data_dir, sample_rate: int = SAMPLE_RATE, interactive: bool = True,
                      **feature_flags):
    """Record yourself saying a word and compare your clip with the data set's: both played
    and drawn side by side (waveform and MFCCs; ``feature_flags`` as in ``clip_browser``). The
    first view shows the data set's clip; each recording (its loudest second) joins it."""
    from html import escape

    from IPython.display import HTML, Markdown, display

    from kwsnb.data import scan_folder

    folder = scan_folder(data_dir)
    words = sorted(folder.words)
    view = _View()
    state = {"word": "yes" if "yes" in words else words[0], "mine": None}

    def show() -> None:
        word = state["word"]
        path = folder.words[word][0]
        clips = {f"data set: {word} ({path.parent.name}/{path.name})": _load(path, sample_rate)}
        if state["mine"] is not None:
            clips["your recording"] = state["mine"]
        caption = (f"**your recording** beside the data set's **{word}**"
                   if state["mine"] is not None else
                   f"the data set's **{word}**: press record and say it")
        players = "".join(
            f'<div style="margin:0 12px 8px 0"><div><b>{escape(name)}</b></div>'
            f"{_audio(clip, sample_rate)._repr_html_()}</div>" for name, clip in clips.items())
        figure = plots.waveforms_and_mfccs(list(clips.values()), list(clips), sample_rate,
                                           **feature_flags)
        figure.set_size_inches(5 * len(clips), 4.6)
        view.show(Markdown(caption), HTML(f'<div style="display:flex">{players}</div>'),
                  _detached(figure))

    widgets = _ipywidgets() if interactive else None
    controls = None
    if widgets is not None:
        word = widgets.Dropdown(options=words, value=state["word"], description="word")
        row = [word]
        mic = _recorder()
        if mic is not None:
            def on_recording(audio):
                state["mine"] = loudest_second(audio, sample_rate)
                show()
            mic.on_recording(on_recording)
            row.append(mic)

        def on_word(change):
            state["word"] = change["new"]
            show()
        word.observe(on_word, names="value")
        controls = widgets.HBox(row)
        display(controls)
    show()
    return controls
