"""What the notebooks show: matplotlib figures and Markdown tables of kwsnb's data, models and
reports.

Every plotting function draws on new axes (or on ``ax`` when given) and returns the Figure; in a
notebook end the call with ``;`` so the figure is shown once. Tables are returned as
``IPython.display.Markdown`` (plain Markdown text in ``.data``), so they render in Jupyter,
Colab and on GitHub alike.

Nothing here trains, exports or evaluates: the numbers come from ``report.json``,
``training_log.csv`` and ``flags.json`` of a train_dir (see ``kwsnb.train``/``kwsnb.evaluate``),
or from a model's own predictions.
"""
from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Mapping, Sequence

import matplotlib.pyplot as plt
import numpy as np

SAMPLE_RATE = 16000
# Report formats in the order tables list them, with short names for chart axes.
FORMAT_LABELS = {
    "keras": "Keras (float)",
    "tflite_float": "TFLite float",
    "tflite_dynamic": "TFLite dynamic range",
    "tflite_int8": "TFLite int8",
    "tflite_features_int8": "TFLite int8, MFCC in",
    "tflite_stream_external_float": "stream, external state, float",
    "tflite_stream_external_int8": "stream, external state, int8",
    "tflite_stream_internal_float": "stream, internal state, float",
}
SPLIT_COLORS = {"training": "tab:blue", "validation": "tab:orange", "testing": "tab:green"}


def markdown(text: str):
    from IPython.display import Markdown

    return Markdown(text)


def _axes(ax, figsize):
    if ax is not None:
        return ax.figure, ax
    return plt.subplots(figsize=figsize, layout="constrained")


# ---------------------------------------------------------------------------------------------
# Data
# ---------------------------------------------------------------------------------------------

def label_counts(counts: Mapping[str, Mapping[str, int]], ax=None, title: str | None = None):
    """Examples per label and split, as grouped horizontal bars.

    ``counts``: ``{split: {label: examples}}`` (``kwsnb.data.SpeechCommands.label_counts``).
    """
    splits = [s for s in counts if sum(counts[s].values())]
    labels = list(next(iter(counts.values())))
    fig, ax = _axes(ax, (8, 0.35 * len(labels) + 1.5))
    height = 0.8 / max(len(splits), 1)
    positions = np.arange(len(labels))
    for i, split in enumerate(splits):
        values = [counts[split].get(label, 0) for label in labels]
        ax.barh(positions + i * height, values, height, label=f"{split} ({sum(values):,})",
                color=SPLIT_COLORS.get(split))
    ax.set_yticks(positions + height * (len(splits) - 1) / 2, labels)
    ax.invert_yaxis()
    ax.set_xlabel("examples")
    ax.set_title(title or "Examples per label and split")
    ax.legend(loc="lower right")
    return fig


def mfcc_of(audio: np.ndarray, **feature_flags) -> np.ndarray:
    """MFCCs ``[frames, dct]`` of one clip, computed by the models' own front end
    (``kwsnb.features.MFCC``; ``feature_flags`` as the seed names them)."""
    from kwsnb.features import MFCC

    layer = MFCC(**feature_flags)
    return np.asarray(layer(np.asarray(audio, np.float32)[np.newaxis]))[0]


def waveforms_and_mfccs(clips: Sequence[np.ndarray], titles: Sequence[str],
                        sample_rate: int = SAMPLE_RATE, **feature_flags):
    """One column per clip: the waveform above, its MFCCs (what the model sees) below.

    The colour scale is shared and set by coefficients 1 and up: coefficient 0 (overall
    loudness) spans a much wider range and would wash the others out.
    """
    count = len(clips)
    fig, axes = plt.subplots(2, count, figsize=(2.6 * count + 0.8, 4.6), squeeze=False,
                             sharey="row", layout="constrained")
    features = [mfcc_of(np.asarray(clip, np.float32), sample_rate=sample_rate, **feature_flags)
                for clip in clips]
    rest = np.concatenate([f[:, 1:].ravel() for f in features])
    low, high = np.percentile(rest, [1, 99]) if rest.size else (None, None)
    image = None
    for column, (clip, mfcc, title) in enumerate(zip(clips, features, titles)):
        clip = np.asarray(clip, np.float32)
        seconds = len(clip) / sample_rate
        wave_ax, mfcc_ax = axes[0, column], axes[1, column]
        wave_ax.plot(np.arange(len(clip)) / sample_rate, clip, linewidth=0.5)
        wave_ax.set_title(title, fontsize=10)
        image = mfcc_ax.imshow(mfcc.T, origin="lower", aspect="auto", cmap="magma",
                               vmin=low, vmax=high, extent=(0, seconds, 0, mfcc.shape[1]))
        for ax in (wave_ax, mfcc_ax):
            ax.set_xticks(np.linspace(0, seconds, 3))
            ax.set_xlabel("time (s)")
    axes[0, 0].set_ylabel("amplitude")
    axes[1, 0].set_ylabel("MFCC coefficient")
    if image is not None:
        fig.colorbar(image, ax=axes[1, :].tolist(), label="MFCC value", shrink=0.9)
    return fig


def augmented_copies(dataset, clip: np.ndarray, is_silence: bool = False, count: int = 3,
                     seed: int = 0) -> np.ndarray:
    """``count`` copies of ``clip`` through the training augmentation of ``dataset`` (a
    ``kwsnb.data.SpeechCommands``: its stretch, shift and background-noise settings)."""
    from kwsnb import data

    batch = np.repeat(np.asarray(clip, np.float32)[np.newaxis], count, axis=0)
    augmented = data.augment_audio(
        batch, np.full(count, is_silence), dataset.noise, np.array([seed, 0], np.int64),
        resample=dataset.resample, volume_resample=dataset.volume_resample,
        time_shift_samples=dataset.time_shift_samples,
        background_frequency=dataset.background_frequency,
        background_volume=dataset.background_volume, silence_volume=dataset.silence_volume)
    return np.asarray(augmented)


# ---------------------------------------------------------------------------------------------
# Models
# ---------------------------------------------------------------------------------------------

def parameters_per_layer(model, ax=None, title: str | None = None):
    """Trainable parameters of each layer that has any, in model order."""
    names, counts = [], []
    for layer in model.layers:
        count = int(sum(np.prod(w.shape) for w in layer.trainable_weights))
        if count:
            names.append(layer.name)
            counts.append(count)
    fig, ax = _axes(ax, (8, 0.22 * len(names) + 1.2))
    positions = np.arange(len(names))
    ax.barh(positions, counts, color="tab:blue")
    ax.set_yticks(positions, names, fontsize=7)
    ax.invert_yaxis()
    ax.set_xlabel("trainable parameters")
    ax.set_title(title or f"{model.name}: {sum(counts):,} trainable parameters")
    return fig


def model_summary(model, seed_params: int | None = None):
    """One Markdown line: parameters (beside the seed's count), MACs, input and output."""
    from kwsnb import models

    params = models.count_params(model)
    macs = models.count_macs(model)
    seed_note = "" if seed_params is None else (
        " (the seed's model: the same)" if seed_params == params
        else f" (the seed's model: {seed_params:,})")
    frames = None
    for layer in model.layers:  # the front end's output gives frames x coefficients
        if layer.name == "mfcc":
            frames = tuple(layer.output.shape[1:])
    features = f", MFCC {frames[0]} frames x {frames[1]} coefficients" if frames else ""
    return markdown(
        f"**{params:,}** trainable parameters{seed_note}; "
        f"**{sum(macs.values()) / 1e6:.2f} M** multiply-accumulates per 1 s clip "
        f"(front end {macs['front_end'] / 1e6:.2f} M, body {macs['body'] / 1e6:.2f} M); "
        f"input {tuple(model.inputs[0].shape[1:])} raw samples{features}; "
        f"output {model.outputs[0].shape[-1]} logits.")


# ---------------------------------------------------------------------------------------------
# Training
# ---------------------------------------------------------------------------------------------

def read_training_log(train_dir) -> dict[str, np.ndarray]:
    """``training_log.csv`` as columns, plus ``step`` (training steps at each validation)."""
    from kwsnb import train as training

    train_dir = Path(train_dir)
    path = train_dir / training.TRAINING_LOG
    if not path.is_file():
        raise FileNotFoundError(f"{path} not found: train the model first")
    with path.open() as f:
        rows = list(csv.DictReader(f))
    columns = {key: np.array([float(row[key]) if row[key] else np.nan for row in rows])
               for key in (rows[0] if rows else {})}
    flags = training.load_flags(train_dir)
    stages = training.Stages.from_flags(flags["how_many_training_steps"], flags["learning_rate"])
    interval = training.validation_interval(stages.total, int(flags["eval_step_interval"]))
    columns["step"] = (np.arange(len(rows)) + 1) * interval
    return columns


def training_curves(train_dir, title: str | None = None):
    """Loss and accuracy on training batches and on the validation split, per validation."""
    log = read_training_log(train_dir)
    fig, (loss_ax, accuracy_ax) = plt.subplots(1, 2, figsize=(10, 3.6), layout="constrained")
    steps = log["step"]
    marker = "o" if len(steps) < 30 else None
    for key, name in (("loss", "training batches"), ("val_loss", "validation")):
        if key in log:
            loss_ax.plot(steps, log[key], marker=marker, label=name)
    for key, name in (("accuracy", "training batches"), ("val_accuracy", "validation")):
        if key in log:
            accuracy_ax.plot(steps, 100 * log[key], marker=marker, label=name)
    if "val_accuracy" in log and np.isfinite(log["val_accuracy"]).any():
        best = int(np.nanargmax(log["val_accuracy"][::-1]))  # ties: the later step, as training
        best = len(steps) - 1 - best
        accuracy_ax.scatter(steps[best], 100 * log["val_accuracy"][best], s=90,
                            facecolors="none", edgecolors="black", zorder=3,
                            label=f"best weights (step {steps[best]:,})")
    loss_ax.set(xlabel="training step", ylabel="cross-entropy", title="Loss")
    accuracy_ax.set(xlabel="training step", ylabel="accuracy (%)", title="Accuracy")
    for ax in (loss_ax, accuracy_ax):
        ax.grid(alpha=0.3)
        ax.legend()
    fig.suptitle(title or f"Training of {Path(train_dir).name}")
    return fig


def confusion_matrix(labels: np.ndarray, predictions: np.ndarray, label_names: Sequence[str],
                     ax=None, title: str | None = None):
    """Rows: true label, columns: predicted label; cells: clip counts, shaded by the share of
    the row (so rare labels are as visible as common ones)."""
    labels, predictions = np.asarray(labels), np.asarray(predictions)
    size = len(label_names)
    matrix = np.zeros((size, size), np.int64)
    np.add.at(matrix, (labels, predictions), 1)
    shares = matrix / np.maximum(matrix.sum(axis=1, keepdims=True), 1)
    fig, ax = _axes(ax, (0.45 * size + 2.5, 0.45 * size + 2))
    image = ax.imshow(shares, cmap="Blues", vmin=0, vmax=1)
    for row in range(size):
        for column in range(size):
            if matrix[row, column]:
                ax.text(column, row, str(matrix[row, column]), ha="center", va="center",
                        fontsize=7, color="white" if shares[row, column] > 0.5 else "black")
    ax.set_xticks(range(size), label_names, rotation=60, ha="right")
    ax.set_yticks(range(size), label_names)
    ax.set_xlabel("predicted label")
    ax.set_ylabel("true label")
    accuracy = 100 * float(np.mean(labels == predictions)) if len(labels) else float("nan")
    ax.set_title(title or f"Confusion matrix ({len(labels):,} clips, accuracy {accuracy:.1f}%)")
    fig.colorbar(image, ax=ax, label="share of the true label's clips", shrink=0.8)
    return fig


# ---------------------------------------------------------------------------------------------
# Reports
# ---------------------------------------------------------------------------------------------

def load_report(path) -> dict:
    """A ``report.json`` (a file, or a train_dir holding one)."""
    path = Path(path)
    if path.is_dir():
        path = path / "report.json"
    if not path.is_file():
        raise FileNotFoundError(f"{path} not found: evaluate the model first "
                                "(python -m kwsnb.evaluate TRAIN_DIR)")
    return json.loads(path.read_text())


def report_table(report: dict):
    """Accuracy, size and latency per format of one report, as a Markdown table."""
    test = report.get("test_set", {})
    lines = [f"**{report['model']}**, {report['params']:,} parameters, "
             f"test set: {test.get('name', '?')} ({test.get('clips', 0):,} clips)", "",
             "| format | accuracy | size (KB) | latency (ms) | per | stream agrees with non-stream |",
             "|---|---:|---:|---:|---|---:|"]
    for name, entry in report["formats"].items():
        label = FORMAT_LABELS.get(name, name)
        if "error" in entry:
            lines.append(f"| {label} | failed: {entry['error'][:80]} | | | | |")
            continue
        latency = "-" if entry.get("latency_ms") is None else f"{entry['latency_ms']:.3f}"
        agreement = f"{100 * entry['agreement']:.1f}% of {entry['clips']:,}" \
            if "agreement" in entry else ""
        lines.append(f"| {label} | {100 * entry['accuracy']:.2f}% | "
                     f"{entry['size_bytes'] / 1024:.1f} | {latency} | "
                     f"{entry.get('latency_per', '')} | {agreement} |")
    measurement = report.get("measurement", {})
    if measurement:
        lines += ["", f"Latency: {measurement.get('latency', '')}; {measurement.get('machine', '')}."]
    return markdown("\n".join(lines))


def report_chart(report: dict, title: str | None = None):
    """Accuracy, file size and latency of every format of one report, side by side."""
    names = [n for n, e in report["formats"].items() if "error" not in e]
    labels = [FORMAT_LABELS.get(n, n) for n in names]
    entries = [report["formats"][n] for n in names]
    fig, axes = plt.subplots(1, 3, figsize=(12, 0.35 * len(names) + 1.8), sharey=True,
                             layout="constrained")
    positions = np.arange(len(names))
    colors = ["tab:purple" if "stream" in n else "tab:blue" if "int8" not in n else "tab:green"
              for n in names]
    values = (
        ([100 * e["accuracy"] for e in entries], "accuracy (%)"),
        ([e["size_bytes"] / 1024 for e in entries], "size (KB)"),
        ([np.nan if e.get("latency_ms") is None else e["latency_ms"] for e in entries],
         "latency (ms; stream formats: per 20 ms packet)"),
    )
    for ax, (numbers, xlabel) in zip(axes, values):
        ax.barh(positions, numbers, color=colors)
        ax.set_xlabel(xlabel)
        ax.grid(axis="x", alpha=0.3)
    axes[0].set_yticks(positions, labels)
    axes[0].invert_yaxis()
    fig.suptitle(title or f"{report['model']}: every exported format "
                 f"({report.get('test_set', {}).get('name', '')})")
    return fig


# ---------------------------------------------------------------------------------------------
# Streaming
# ---------------------------------------------------------------------------------------------

def softmax(logits: np.ndarray) -> np.ndarray:
    logits = np.asarray(logits, np.float64)
    shifted = np.exp(logits - logits.max(axis=-1, keepdims=True))
    return shifted / shifted.sum(axis=-1, keepdims=True)


def stream_vs_non_stream(non_stream_model, runner, audio: np.ndarray,
                         label_names: Sequence[str], title: str | None = None):
    """Feeds ``audio`` to a streaming model (``kwsnb.streaming.StreamRunner``) packet by packet
    and compares with the non-stream model; returns ``(figure, max |logit difference|)``.

    Models with valid padding only (``kwsnb.streaming.exact_on_last_second``) are compared
    after every packet from the 50th on, against the non-stream output on the second of audio
    ending there. Causal models are compared on the first clip, fed from a reset state whose
    audio buffer is primed with the clip's first packet (docs/streaming.md).
    """
    from kwsnb import streaming

    audio = np.asarray(audio, np.float32).reshape(-1)
    packet = runner.packet_samples
    clip_samples = int(non_stream_model.inputs[0].shape[1])
    per_clip = clip_samples // packet
    if streaming.exact_on_last_second(non_stream_model):
        runner.reset()
        stream_logits = runner.run(audio)
        ends = np.arange(per_clip, len(audio) // packet + 1)
        windows = np.stack([audio[end * packet - clip_samples:end * packet] for end in ends])
        expected = non_stream_model.predict(windows, verbose=0)
        compared = stream_logits[ends - 1]
        how = "every packet from 1 s on vs the non-stream model on the last second"
    else:
        clip = audio[:clip_samples]
        runner.reset(prime=clip[:packet])
        stream_logits = np.concatenate([np.full((1, len(label_names)), np.nan),
                                        runner.run(clip[packet:])])
        ends = np.array([per_clip])
        expected = non_stream_model.predict(clip[np.newaxis], verbose=0)
        compared = stream_logits[-1:]
        how = "end of the clip (stream primed with its first packet) vs the non-stream model"
    difference = float(np.abs(compared - expected).max())

    probabilities = softmax(stream_logits)
    top = np.argsort(-np.nanmax(probabilities, axis=0))[:3]
    fig, ax = plt.subplots(figsize=(10, 3.4), layout="constrained")
    seconds = np.arange(1, len(stream_logits) + 1) * packet / SAMPLE_RATE
    expected_probabilities = softmax(expected)
    for i, label in enumerate(top):
        color = f"C{i}"
        ax.plot(seconds, probabilities[:, label], color=color,
                label=f"stream: {label_names[label]}")
        ax.plot(ends * packet / SAMPLE_RATE, expected_probabilities[:, label], "o", color=color,
                markersize=4, markerfacecolor="none", label=f"non-stream: {label_names[label]}")
    ax.set(xlabel="time (s): end of the last packet fed", ylabel="probability", ylim=(-0.02, 1.02))
    ax.set_title(title or f"Streaming, 20 ms per packet: {how}; max |logit difference| "
                 f"{difference:.1e}", fontsize=10)
    ax.legend(fontsize=7, ncol=3, loc="upper left")
    ax.grid(alpha=0.3)
    return fig, difference


def probabilities(probs: np.ndarray, label_names: Sequence[str], ax=None,
                  title: str | None = None, true_label: int | None = None):
    """Probabilities of one clip per label, the top one highlighted (the true label outlined)."""
    probs = np.asarray(probs, np.float64).reshape(-1)
    fig, ax = _axes(ax, (6, 0.3 * len(label_names) + 1))
    positions = np.arange(len(label_names))
    colors = ["tab:orange" if i == int(np.argmax(probs)) else "tab:blue"
              for i in range(len(label_names))]
    bars = ax.barh(positions, 100 * probs, color=colors)
    if true_label is not None:
        bars[true_label].set_edgecolor("black")
        bars[true_label].set_linewidth(1.5)
    ax.set_yticks(positions, label_names)
    ax.invert_yaxis()
    ax.set_xlim(0, 100)
    ax.set_xlabel("probability (%)")
    ax.set_title(title or f"prediction: {label_names[int(np.argmax(probs))]}")
    return fig


def noise_levels(noise, ax=None, title: str | None = None):
    """RMS level of each background-noise recording (a ``kwsnb.data.BackgroundNoise``) beside
    the typical level of speech in a keyword clip (RMS ~0.045 of full scale)."""
    rms = [float(np.sqrt(np.mean(noise.samples[start:start + length].astype(np.float64) ** 2)))
           for start, length in zip(noise.starts, noise.lengths)]
    fig, ax = _axes(ax, (7, 0.35 * len(rms) + 1.4))
    positions = np.arange(len(rms))
    ax.barh(positions, rms, color="tab:gray")
    ax.axvline(0.045, color="tab:red", linestyle="--", label="typical keyword clip (RMS 0.045)")
    ax.set_yticks(positions, [f"{name} ({length / SAMPLE_RATE:.0f} s)" for name, length
                              in zip(noise.names, noise.lengths)])
    ax.invert_yaxis()
    ax.set_xscale("log")
    ax.set_xlim(min(rms + [0.045]) / 2, max(rms + [0.045]) * 2)
    ax.set_xlabel("RMS (fraction of full scale, log scale)")
    ax.legend(loc="lower right", fontsize=8)
    ax.set_title(title or f"{len(rms)} background-noise recordings")
    return fig


def detection_tradeoff(sweep: Sequence[dict], ax=None, title: str | None = None):
    """Miss rate against false accepts per hour, one point per threshold
    (``kwsnb.evaluate.detect.sweep_thresholds``)."""
    fig, ax = _axes(ax, (6, 4))
    false_accepts = [row["false_accepts_per_hour"] for row in sweep]
    misses = [100 * row["miss_rate"] for row in sweep]
    ax.plot(false_accepts, misses, marker="o", markersize=3)
    labelled = set()
    for row, x, y in zip(sweep, false_accepts, misses):
        if round(row["threshold"] * 100) % 20 == 0 and (x, y) not in labelled:
            labelled.add((x, y))  # several thresholds on one point: label the lowest
            ax.annotate(f"{row['threshold']:.1f}", (x, y), fontsize=7, xytext=(3, 3),
                        textcoords="offset points")
    ax.set_xscale("symlog", linthresh=1)
    ax.set_xlabel("false accepts per hour")
    ax.set_ylabel("miss rate (%)")
    ax.grid(alpha=0.3)
    ax.set_title(f"{title}: misses against false accepts" if title else
                 "Misses against false accepts", fontsize=10)
    ax.text(0.99, 0.98, "point labels: threshold", transform=ax.transAxes, ha="right",
            va="top", fontsize=7, color="0.4")
    return fig
