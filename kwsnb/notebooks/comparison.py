"""The architectures side by side (compare_30k): one row per trained model's report, with its MACs,
training steps and the seed's published figures, as a table and as charts."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Sequence

import matplotlib.pyplot as plt
import numpy as np

from kwsnb.notebooks.plots import markdown


def comparison_rows(models_dir, report_name: str = "report.json") -> list[dict]:
    """One row per ``report_name`` found under ``models_dir`` (any depth): the report's numbers
    with the model's MACs and training steps, and the seed's published figures
    (``kwsnb.models.seed.PUBLISHED``) for the same architecture. Sorted in the seed's table order."""
    from kwsnb import models
    from kwsnb.models import seed
    from kwsnb import train as training

    rows = []
    for path in sorted(Path(models_dir).rglob(report_name)):
        report = json.loads(path.read_text())
        train_dir = path.parent
        flags = training.load_flags(train_dir) if (train_dir / training.FLAGS_FILE).is_file() \
            else {}
        macs = None
        if flags:
            try:
                macs = sum(models.count_macs(training.build_model(flags)).values())
            except (training.TrainError, ValueError):
                macs = None
        formats = report["formats"]

        def value(fmt, key):
            entry = formats.get(fmt, {})
            return None if "error" in entry else entry.get(key)

        rows.append({
            "model": report["model"], "train_dir": str(train_dir), "params": report["params"],
            "macs": macs, "test_set": report.get("test_set", {}).get("name", ""),
            "steps": flags.get("how_many_training_steps"),
            "training_seconds": flags.get("training_seconds"),
            "formats": formats,
            "float_accuracy": next((a for a in (value("tflite_float", "accuracy"),
                                                 value("keras", "accuracy")) if a is not None),
                                   None),
            "float_size_bytes": value("tflite_float", "size_bytes"),
            "dynamic_accuracy": value("tflite_dynamic", "accuracy"),
            "dynamic_size_bytes": value("tflite_dynamic", "size_bytes"),
            "int8_accuracy": value("tflite_int8", "accuracy"),
            "int8_size_bytes": value("tflite_int8", "size_bytes"),
            "int8_latency_ms": value("tflite_int8", "latency_ms"),
            "float_latency_ms": value("tflite_float", "latency_ms"),
            "stream_latency_ms": value("tflite_stream_external_float", "latency_ms"),
            "published": seed.PUBLISHED.get(report["model"]),
            "changes": getattr(models.architecture(report["model"]), "CHANGES", "")
            if report["model"] in models.MODELS else "",
        })
    order = {name: i for i, name in enumerate(models.ARCHITECTURES)}
    return sorted(rows, key=lambda r: (order.get(r["model"], len(order)), r["train_dir"]))


def _measured_and_published(measured, published, scale=1.0, digits=1) -> str:
    """"8.3 (95.7)": a measured value with the seed's in brackets; "-" for either missing."""
    mine = "-" if measured is None else f"{measured * scale:,.{digits}f}"
    if published is None:
        return mine
    return f"{mine} ({published:,.{digits}f})" if isinstance(published, float) \
        else f"{mine} ({published:,})"


def comparison_table(rows: Sequence[dict]):
    """Measured per architecture, the seed's published figure in brackets, as a Markdown
    table (with the source cited)."""
    from kwsnb.models import seed

    lines = [
        "| model | params | M MACs | float acc. % | dynamic-range acc. % | int8 acc. % | "
        "int8 size KB | int8 latency ms | stream latency ms/packet |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for row in rows:
        published = row["published"] or {}
        macs = "-" if row["macs"] is None else f"{row['macs'] / 1e6:.2f}"
        size = row["int8_size_bytes"]
        lines.append(" | ".join([
            f"| {row['model']}",
            _measured_and_published(row["params"], published.get("params"), digits=0),
            macs,
            _measured_and_published(row["float_accuracy"], published.get("float_accuracy"), 100),
            _measured_and_published(row["dynamic_accuracy"], published.get("quant_accuracy"),
                                    100),
            _measured_and_published(row["int8_accuracy"], None, 100),
            _measured_and_published(None if size is None else size / 1024,
                                    published.get("quant_size_kb"), digits=0),
            _measured_and_published(row["int8_latency_ms"], published.get("latency_ms"),
                                    digits=2),
            _measured_and_published(row["stream_latency_ms"], published.get("stream_latency_ms"),
                                    digits=3)]) + " |")
    tests = sorted({row["test_set"] for row in rows})
    lines += ["", f"Measured here on: {'; '.join(tests) or '-'}. In brackets: published by the "
              f"seed ({seed.SOURCE}; Speech Commands V2, 12 labels, 80,000 training steps). "
              "The seed's \"quant\" is dynamic-range quantization, so its quant accuracy and "
              "size sit in the dynamic-range and size columns; its latencies were measured on a "
              "Pixel 4 phone and compare between models, not with latencies measured here. "
              "kwsnb's sizes include its float MFCC front end's constants (window, mel "
              "filterbank, DCT: `front_end_bytes` in report.json)."]
    return markdown("\n".join(lines))


def comparison_charts(rows: Sequence[dict], title: str | None = None):
    """Four panels: accuracy against int8 size, latency, parameters and MACs; measured points
    (filled) beside the seed's published ones (hollow, where the seed published that figure)."""
    fig, axes = plt.subplots(2, 2, figsize=(12, 8.5), layout="constrained")
    panels = (
        (axes[0, 0], "int8_size_bytes", lambda v: v / 1024, "quant_size_kb",
         "model size (KB): measured int8 TFLite; published: dynamic-range"),
        (axes[0, 1], "int8_latency_ms", lambda v: v, "latency_ms",
         "latency per clip (ms): measured int8 here; published: Pixel 4"),
        (axes[1, 0], "params", lambda v: v / 1000, "params", "trainable parameters (thousands)"),
        (axes[1, 1], "macs", lambda v: v / 1e6, None, "multiply-accumulates per clip (millions)"),
    )
    for ax, key, scale, published_key, xlabel in panels:
        for i, row in enumerate(rows):
            color = f"C{i % 10}"
            accuracy = row["int8_accuracy"] if row["int8_accuracy"] is not None \
                else row["float_accuracy"]
            if row.get(key) is not None and accuracy is not None:
                ax.scatter(scale(row[key]), 100 * accuracy, color=color, s=50, zorder=3)
                ax.annotate(row["model"], (scale(row[key]), 100 * accuracy), fontsize=7,
                            xytext=(4, 3), textcoords="offset points")
            published = row["published"] or {}
            if published_key and published.get(published_key) is not None:
                value = published[published_key] / (1000 if published_key == "params" else 1)
                ax.scatter(value, published["quant_accuracy"], facecolors="none",
                           edgecolors=color, s=50, zorder=3)
        ax.set_xlabel(xlabel)
        ax.set_ylabel("accuracy (%)")
        ax.grid(alpha=0.3)
    handles = [plt.Line2D([], [], marker="o", linestyle="", color="gray", label="measured here"),
               plt.Line2D([], [], marker="o", linestyle="", markerfacecolor="none",
                          color="gray", label="published by the seed (quant)")]
    fig.legend(handles=handles, loc="outside lower center", ncols=2, fontsize=9)
    tests = sorted({row["test_set"] for row in rows})
    fig.suptitle(title or f"The ~30k-parameter models: accuracy (int8) against cost "
                 f"(measured on {'; '.join(tests)})", fontsize=11)
    return fig


def comparison_bars(rows: Sequence[dict], title: str | None = None):
    """Accuracy per model: measured float, dynamic-range and int8 beside the seed's published
    float and quant (dynamic-range) accuracy (hatched)."""
    fig, ax = plt.subplots(figsize=(12, 4), layout="constrained")
    measured = (("float_accuracy", "float"), ("dynamic_accuracy", "dynamic range"),
                ("int8_accuracy", "int8"))
    published = (("float_accuracy", "published float"), ("quant_accuracy", "published quant"))
    width = 0.16
    positions = np.arange(len(rows))
    for i, (key, label) in enumerate(measured):
        values = [np.nan if row[key] is None else 100 * row[key] for row in rows]
        ax.bar(positions + (i - 2) * width, values, width, label=label, color=f"C{i}")
    for i, (key, label) in enumerate(published):
        values = [row["published"][key] if row["published"] else np.nan for row in rows]
        ax.bar(positions + (i + 1) * width, values, width, label=label, fill=False,
               hatch="//", edgecolor=f"C{i}")
    ax.set_xticks(positions, [row["model"] for row in rows])
    ax.set_ylabel("accuracy (%)")
    ax.set_ylim(0, 100)
    ax.grid(axis="y", alpha=0.3)
    ax.legend(fontsize=8, ncol=5, loc="lower center")
    ax.set_title(title or "Accuracy measured here (filled) and published by the seed (hatched)")
    return fig


def changes_table():
    """What kwsnb changed in each architecture to stream it (``CHANGES`` of each model module),
    with the seed's and kwsnb's parameter counts, as a Markdown table."""
    from kwsnb import models

    lines = ["| model | seed parameters | what kwsnb changed to stream it |", "|---|---:|---|"]
    for name in models.MODELS:
        module = models.architecture(name)
        lines.append(f"| {name} | {module.SEED_PARAMS:,} | {module.CHANGES} |")
    return markdown("\n".join(lines))


