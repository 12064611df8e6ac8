"""The notebooks: rendered from templates, and the few helpers they call.

Rendering (``python -m kwsnb.notebooks`` rewrites ``notebooks/*.ipynb``; ``--check`` only
reports stale ones, as ``tests/test_notebooks.py`` does):

* ``notebooks/templates/*.py`` are the sources, in the "percent" format (``# %%`` starts a code
  cell, ``# %% [markdown]`` a Markdown cell whose lines start with ``# ``, ``tags=[...]`` after
  either sets cell tags). ``{{name}}`` placeholders are filled in at rendering.
* ``architecture.py`` renders once per architecture (``kwsnb.models.ARCHITECTURES``) into
  ``notebooks/<name>.ipynb``, so the eight notebooks cannot drift apart. What differs is prose
  taken from the model module: its docstring (the seed's structure, what kwsnb changed to stream
  it, notes on the seed's command line) and ``CHANGES``; and the seed's command line and
  published figures from ``kwsnb.seed``. Modules are read as text (``ast``), so rendering needs
  neither TensorFlow nor Keras.
* ``00_data_setup.py`` and ``compare_30k.py`` render as themselves.
* Every notebook starts with a setup cell that installs kwsnb from ``REPO_URL`` where it is not
  importable (Colab), and has a ``parameters`` cell for papermill whose defaults are the seed's
  full recipe; ``quick = True`` selects ``QUICK`` (a few minutes on 2 CPU cores).

Helpers the notebooks call: ``settings`` (full recipe or quick preset), ``prepare_data`` (the
data source parameter to a data folder), ``train`` (trains, or reuses a finished run),
``test_clips`` (the clips a train_dir is scored on).
"""
from __future__ import annotations

import argparse
import ast
import dataclasses
import json
import re
import sys
import textwrap
from pathlib import Path
from typing import Sequence

# Where the repository lives: the Colab setup cell installs from it and the badges link to it.
# A placeholder until the project is published: replace OWNER and run `python -m kwsnb.notebooks`.
REPO = "OWNER/kwsnb"
BRANCH = "main"
REPO_URL = f"https://github.com/{REPO}"
INSTALL_SPEC = f"git+{REPO_URL}"
COLAB_URL = f"https://colab.research.google.com/github/{REPO}/blob/{BRANCH}/notebooks/{{file}}"
COLAB_BADGE = "https://colab.research.google.com/assets/colab-badge.svg"

PACKAGE_DIR = Path(__file__).resolve().parent
REPO_ROOT = PACKAGE_DIR.parent
NOTEBOOK_DIR = REPO_ROOT / "notebooks"
TEMPLATE_DIR = NOTEBOOK_DIR / "templates"
ARCHITECTURE_TEMPLATE = "architecture.py"
SINGLE_NOTEBOOKS = ("00_data_setup", "compare_30k")

# The seed's ten keywords plus six other words for _unknown_: the quick synthetic set.
QUICK_SYNTHETIC_WORDS = ("yes", "no", "up", "down", "left", "right", "on", "off", "stop", "go",
                         "bed", "bird", "cat", "dog", "happy", "house")
SYNTHETIC_SOURCE = "synthetic"
# Said up front in an architecture's notebook, before the details its module docstring gives.
RECIPE_NOTES = {
    "inception": "**The seed's command line has a bug.** A line continuation is missing after "
                 "`--cnn2_kernel_sizes '3,5,5'`, so its last three flags — `--cnn_strides "
                 "'2,2,1'`, `--dropout 0.0` and `--bn_scale 0` — were dropped and never reached "
                 "the seed's program. kwsnb uses the meant values (the command above shows them "
                 "in place). In detail:",
}
SPEECH_COMMANDS_SOURCES = {"speech_commands": 2, "speech_commands_v2": 2,
                           "speech_commands_v1": 1}


# ---------------------------------------------------------------------------------------------
# Settings: the seed's full recipe, or the quick preset
# ---------------------------------------------------------------------------------------------

@dataclasses.dataclass(frozen=True)
class Settings:
    """What a notebook run does beyond the seed's command line.

    ``steps`` / ``learning_rates``: None keeps the seed's (80,000 steps in four stages).
    ``extra_flags``: training flags added before the model name. ``formats``: the formats
    exported and measured (None: all). ``stream_clips`` / ``latency_runs``: evaluation effort
    (``kwsnb.evaluate.evaluate_train_dir``). ``stream_format``: the streaming model run over the
    long recording, of ``recording_seconds``. ``synthetic_speakers`` / ``synthetic_words``: the
    offline TTS set made when the data source is ``"synthetic"`` (None: all 35 words).
    """

    quick: bool
    steps: str | None
    learning_rates: str | None
    extra_flags: tuple[str, ...]
    formats: tuple[str, ...] | None
    stream_clips: int | None
    latency_runs: int
    stream_format: str
    recording_seconds: float
    synthetic_speakers: int
    synthetic_words: tuple[str, ...] | None
    recipe: str = "seed"

    def training_flags(self, wanted_words: str | None = None,
                       distribute: str | None = None) -> list[str]:
        """Flags for ``kwsnb.seed.seed_command(..., extra=...)``; ``distribute`` other than
        "none" adds ``--distribute`` (``kwsnb.train.distribute``)."""
        flags = list(self.extra_flags)
        if wanted_words:
            flags += ["--wanted_words", str(wanted_words)]
        if distribute and str(distribute) != "none":
            flags += ["--distribute", str(distribute)]
        return flags

    def _repr_markdown_(self) -> str:
        shown = " ".join(flag or "''" for flag in self.extra_flags)
        recipe = ("" if self.recipe == "seed" else
                  f" Recipe `{self.recipe}`: the seed's command line followed by `{shown}`.")
        if not self.quick:
            steps = self.steps or "the seed's 20000,20000,20000,20000"
            return (f"**Full recipe**: {steps} training steps, every TFLite format, "
                    f"{self.recording_seconds / 60:g} min long recording.{recipe}")
        return (f"**Quick preset** (a smoke run, not a result): {self.steps} training steps "
                f"({' '.join(self.extra_flags)}), formats {', '.join(self.formats or ())}, "
                f"{self.stream_clips} clips per stream format, {self.latency_runs} latency runs, "
                f"{self.recording_seconds:g} s long recording.")


FULL = Settings(quick=False, steps=None, learning_rates=None, extra_flags=(), formats=None,
                stream_clips=1000, latency_runs=200,
                stream_format="tflite_stream_external_int8", recording_seconds=300.0,
                synthetic_speakers=300, synthetic_words=None)
# A few minutes per notebook on 2 CPU cores: enough to run every step, not to learn much.
QUICK = Settings(quick=True, steps="60,60", learning_rates="0.001,0.0005",
                 extra_flags=("--eval_step_interval", "60", "--batch_size", "50"),
                 formats=("keras", "tflite_float", "tflite_dynamic", "tflite_int8",
                          "tflite_stream_external_float"),
                 stream_clips=20, latency_runs=20, stream_format="tflite_stream_external_float",
                 recording_seconds=60.0, synthetic_speakers=12,
                 synthetic_words=QUICK_SYNTHETIC_WORDS)


RECIPES = ("seed", "sc_lite9")


def settings(quick: bool = False, training_steps: str | None = None,
             learning_rates: str | None = None, recipe: str = "seed") -> Settings:
    """The full recipe or the quick preset, with the notebook's steps / learning rates.

    ``recipe``: ``"seed"`` (the seed's flags) or ``"sc_lite9"`` (docs/results_sc_lite9.md's:
    ``kwsnb.seed.sc_lite9_recipe()``'s flags and, unless quick, its steps and learning rates).
    Learning rates left out follow the steps: the preset's (or the seed's) first rates, one per
    stage, the last repeated when there are more stages.
    """
    from kwsnb import seed

    if recipe not in RECIPES:
        raise ValueError(f"recipe = {recipe!r}: use one of {', '.join(map(repr, RECIPES))}")
    chosen = QUICK if quick else FULL
    if recipe == "sc_lite9":
        steps, rates, flags = seed.sc_lite9_recipe()
        chosen = dataclasses.replace(
            chosen, recipe=recipe, extra_flags=(*flags, *chosen.extra_flags),
            steps=chosen.steps if quick else steps,
            learning_rates=chosen.learning_rates if quick else rates)
    if training_steps is None and learning_rates is None:
        return chosen
    steps = training_steps or chosen.steps
    if learning_rates is None and steps is not None:
        stages = len([s for s in str(steps).split(",") if s.strip()])
        known = (chosen.learning_rates or _seed_learning_rates(seed)).split(",")
        learning_rates = ",".join((known + known[-1:] * stages)[:stages])
    return dataclasses.replace(chosen, steps=steps, learning_rates=learning_rates)


def _seed_learning_rates(seed_module) -> str:
    argv = seed_module.seed_command("svdf", "DATA", "MODELS")  # every 30k recipe has the same
    return argv[argv.index("--learning_rate") + 1]


# ---------------------------------------------------------------------------------------------
# Data
# ---------------------------------------------------------------------------------------------

def prepare_data(source: str, data_dir, quick: bool = False, progress: bool = True) -> Path:
    """Makes the notebook's data available and returns its folder.

    ``source``: ``"speech_commands"`` (official V2 download, also ``"speech_commands_v1"``),
    ``"synthetic"`` (the offline TTS set, made in ``data_dir``; ``quick``: 16 words x 12
    speakers), or a URL, a local ``.tar.gz``/``.zip`` archive or an extracted folder (used in
    place). A ``data_dir`` that already holds a Speech Commands layout is used as it is.
    """
    from data_setup import speech_commands, synthetic

    data_dir = Path(data_dir).expanduser()
    preset = QUICK if quick else FULL
    if speech_commands.check_layout(data_dir).ok:
        folder = data_dir
    elif source == SYNTHETIC_SOURCE:
        words = preset.synthetic_words or synthetic.SPEECH_COMMANDS_V2_WORDS
        folder = synthetic.synthesize(data_dir, words=words,
                                      num_speakers=preset.synthetic_speakers, seed=0,
                                      progress=progress)
    elif source in SPEECH_COMMANDS_SOURCES:
        folder = speech_commands.prepare(data_dir, version=SPEECH_COMMANDS_SOURCES[source],
                                         progress=progress)
    elif source:
        folder = speech_commands.prepare(data_dir, source=source, progress=progress)
    else:
        raise ValueError("data_source is empty: give 'speech_commands', 'synthetic', a URL, an "
                         "archive or a folder")
    summary = speech_commands.require_layout(folder)
    if progress:
        print(f"data in {folder}: {summary.describe()}")
        if "google.colab" in sys.modules and not str(Path(folder).resolve()).startswith(
                "/content/drive"):
            print(f"Note: Colab deletes {folder} (and models_dir) when the runtime is "
                  "disconnected or reset. To keep them, mount Google Drive "
                  "(from google.colab import drive; drive.mount('/content/drive')) and set "
                  "data_dir and models_dir below /content/drive/MyDrive.")
    return Path(folder)


def train(argv: Sequence[str]) -> dict:
    """Trains the seed's command line ``argv`` (``kwsnb.seed.seed_command``), or, when its
    train_dir already holds a finished run (``kwsnb.train.finished_run``), uses that run as it
    is: a notebook pointed at a trained model (e.g. the repository's ``models/``) shows its
    results without training again. Returns the run's flags."""
    from kwsnb import train as training

    requested = training.parse_command_line(list(argv))
    finished = training.finished_run(requested["train_dir"])
    if finished is None:
        return training.train(requested)
    if finished["model_name"] != requested["model_name"]:
        raise training.TrainError(f"{requested['train_dir']} holds a finished "
                                  f"{finished['model_name']} run, not {requested['model_name']}: "
                                  "choose another models_dir")
    steps = finished["how_many_training_steps"]
    minutes = (finished.get("training_seconds") or 0) / 60
    note = ("" if steps == requested["how_many_training_steps"] else
            f" (this notebook's settings ask for {requested['how_many_training_steps']})")
    print(f"{requested['train_dir']} holds a finished run: {steps} steps{note}, "
          f"{minutes:.1f} min of training. Training skipped; choose another models_dir to "
          "train again.")
    return finished


def test_clips(flags: dict, test_dir=None, exclude: str | Sequence[str] = ()):
    """The clips a train_dir is scored on, as ``kwsnb.evaluate`` picks them: a test folder in
    the official layout when given, else the data set's testing split (its validation split
    when the testing split is empty). Returns (audio [n, samples], labels [n], description)."""
    from kwsnb import data

    labels = list(flags["labels"])
    if test_dir:
        if isinstance(exclude, str):
            exclude = [w for w in exclude.split(",") if w.strip()]
        audio, targets = data.read_test_folder(test_dir, labels, exclude, progress=False)
        return audio, targets, f"{Path(test_dir).name} ({len(targets):,} clips)"
    dataset = data.SpeechCommands.from_flags(flags, progress=False)
    split = "testing" if dataset.split_sizes["testing"] else "validation"
    audio, targets = dataset.arrays(split)
    return audio, targets, f"{dataset.data_dir.name} {split} split ({len(targets):,} clips)"


# ---------------------------------------------------------------------------------------------
# Templates
# ---------------------------------------------------------------------------------------------

@dataclasses.dataclass(frozen=True)
class TemplateCell:
    kind: str  # "code" or "markdown"
    source: str
    tags: tuple[str, ...] = ()


_CELL_MARKER = re.compile(r"^# %%(?P<markdown> \[markdown\])?(?: tags=(?P<tags>\[.*\]))?\s*$")
_PLACEHOLDER = re.compile(r"\{\{(\w+)\}\}")


def parse_template(text: str) -> list[TemplateCell]:
    """Cells of a percent-format template (see the module docstring)."""
    cells, kind, tags, lines = [], None, (), []

    def close():
        if kind is None:
            return
        body = "\n".join(lines).strip("\n")
        if kind == "markdown":
            body = "\n".join(line[2:] if line.startswith("# ") else line.lstrip("#")
                             for line in body.splitlines())
        cells.append(TemplateCell(kind, body, tags))

    for line in text.splitlines():
        marker = _CELL_MARKER.match(line)
        if marker:
            close()
            kind = "markdown" if marker.group("markdown") else "code"
            tags = tuple(json.loads(marker.group("tags"))) if marker.group("tags") else ()
            lines = []
        elif kind is not None:
            lines.append(line)
    close()
    return cells


def fill(text: str, values: dict[str, str], where: str) -> str:
    """Replaces ``{{key}}`` placeholders; an unknown key is an error naming the template."""
    def replace(match):
        key = match.group(1)
        if key not in values:
            raise KeyError(f"{where}: no value for placeholder {{{{{key}}}}} (known: "
                           f"{', '.join(sorted(values))})")
        return values[key]
    return _PLACEHOLDER.sub(replace, text)


# ---------------------------------------------------------------------------------------------
# Per-architecture prose, from the model module (read as text)
# ---------------------------------------------------------------------------------------------

def _module_constants(path: Path) -> tuple[str, dict]:
    tree = ast.parse(path.read_text())
    constants = {}
    for node in tree.body:
        if isinstance(node, ast.Assign) and len(node.targets) == 1 and \
                isinstance(node.targets[0], ast.Name) and \
                node.targets[0].id in ("CHANGES", "SEED_PARAMS"):
            constants[node.targets[0].id] = ast.literal_eval(node.value)
    return ast.get_docstring(tree) or "", constants


def rst_to_markdown(text: str) -> str:
    """The reStructuredText of kwsnb's docstrings as Markdown: ````x```` -> ```x```, a
    paragraph ending in ``::`` followed by an indented literal block -> a fenced code block."""
    out, lines, i = [], text.splitlines(), 0
    while i < len(lines):
        line = lines[i]
        if line.rstrip().endswith("::"):
            stripped = line.rstrip()[:-2].rstrip()
            out.append(_inline(stripped + ":" if stripped else ""))
            i += 1
            block = []
            while i < len(lines) and (not lines[i].strip() or lines[i].startswith((" ", "\t"))):
                block.append(lines[i])
                i += 1
            while block and not block[-1].strip():
                block.pop()
            out += ["", "```text", textwrap.dedent("\n".join(block)).strip("\n"), "```", ""]
            continue
        out.append(_inline(line))
        i += 1
    return re.sub(r"\n{3,}", "\n\n", "\n".join(out)).strip()


def _inline(line: str) -> str:
    return re.sub(r"``(.+?)``", r"`\1`", line)


def _paragraphs(markdown: str) -> list[str]:
    """Paragraphs (a fenced block stays with the paragraph that introduces it)."""
    paragraphs, current, in_fence = [], [], False
    for line in markdown.splitlines():
        if line.startswith("```"):
            in_fence = not in_fence
        if not line.strip() and not in_fence:
            if current:
                paragraphs.append("\n".join(current))
                current = []
            continue
        current.append(line)
    if current:
        paragraphs.append("\n".join(current))
    merged = []  # a paragraph ending in ':' owns the code block after it
    for paragraph in paragraphs:
        if paragraph.startswith("```") and merged:
            merged[-1] += "\n\n" + paragraph
        else:
            merged.append(paragraph)
    return merged


@dataclasses.dataclass(frozen=True)
class ArchitectureProse:
    """The model module's docstring cut into the notebook's sections."""

    summary: str
    structure: str
    streaming: str
    command_notes: str
    changes: str
    seed_params: int


def architecture_prose(name: str) -> ArchitectureProse:
    """Reads ``kwsnb/models/<name>.py``: its docstring and ``CHANGES`` / ``SEED_PARAMS``."""
    path = PACKAGE_DIR / "models" / f"{name}.py"
    if not path.is_file():
        raise FileNotFoundError(f"{path} not found: no module for architecture {name!r}")
    docstring, constants = _module_constants(path)
    paragraphs = _paragraphs(rst_to_markdown(docstring))
    if not paragraphs:
        raise ValueError(f"{path} has no module docstring: the notebook quotes it")
    summary, rest = paragraphs[0], paragraphs[1:]
    if summary.startswith(f"{name}: "):  # "svdf: a stack of ..." -> "A stack of ..."
        summary = summary[len(name) + 2:]
        summary = summary[:1].upper() + summary[1:]
    streaming_start = next((i for i, p in enumerate(rest)
                            if p.startswith(("What kwsnb changed", "Streaming:"))), len(rest))
    structure, command_notes = [], [RECIPE_NOTES[name]] if name in RECIPE_NOTES else []
    for paragraph in rest[:streaming_start]:
        (command_notes if "command line" in paragraph else structure).append(paragraph)
    return ArchitectureProse(
        summary=summary, structure="\n\n".join(structure),
        streaming="\n\n".join(rest[streaming_start:]),
        command_notes="\n\n".join(command_notes)
        or "kwsnb runs this command line as written (only the module name differs).",
        changes=str(constants.get("CHANGES", "")), seed_params=int(constants.get("SEED_PARAMS", 0)))


def _seed_command_text(name: str) -> str:
    from kwsnb import seed

    lines = [line for line in seed.SEED_COMMANDS[name].strip().splitlines()]
    body = " \\\n".join(f"    {line}" for line in lines)
    return f"python -m kws_streaming.train.model_train_eval \\\n{body}"


def _published_table(name: str) -> str:
    from kwsnb import seed

    figures = seed.PUBLISHED[name]
    stream = f" | {figures['stream_latency_ms']} ms" if "stream_latency_ms" in figures else " | -"
    return ("| parameters | float accuracy | float size | quant accuracy | quant size | "
            "latency | stream latency |\n|---:|---:|---:|---:|---:|---:|---:|\n"
            f"| {figures['params']:,} | {figures['float_accuracy']}% | "
            f"{figures['float_size_kb']} KB | {figures['quant_accuracy']}% | "
            f"{figures['quant_size_kb']} KB | {figures['latency_ms']} ms{stream} |")


def colab_badge(file: str) -> str:
    return f"[![Open In Colab]({COLAB_BADGE})]({COLAB_URL.format(file=file)})"


def _common_values(file: str) -> dict[str, str]:
    from kwsnb import seed

    return {"colab_badge": colab_badge(file), "install_spec": INSTALL_SPEC,
            "repo_url": REPO_URL, "seed_source": seed.SOURCE}


def architecture_values(name: str) -> dict[str, str]:
    """Placeholder values of the architecture template for ``name``."""
    prose = architecture_prose(name)
    return {**_common_values(f"{name}.ipynb"), "name": name, "summary": prose.summary,
            "structure": prose.structure, "streaming_changes": prose.streaming,
            "command_notes": prose.command_notes, "changes": prose.changes,
            "seed_params": f"{prose.seed_params:,}", "seed_command": _seed_command_text(name),
            "published_table": _published_table(name)}


# ---------------------------------------------------------------------------------------------
# Rendering
# ---------------------------------------------------------------------------------------------

def _notebook(cells: list[TemplateCell], values: dict[str, str], where: str, slug: str):
    import nbformat

    notebook = nbformat.v4.new_notebook()
    for index, cell in enumerate(cells):
        source = fill(cell.source, values, where)
        made = (nbformat.v4.new_code_cell(source) if cell.kind == "code"
                else nbformat.v4.new_markdown_cell(source))
        made.id = f"{slug}-{index:02d}"  # stable ids: a re-render changes nothing
        if cell.tags:
            made.metadata["tags"] = list(cell.tags)
        notebook.cells.append(made)
    notebook.metadata = {
        "kernelspec": {"display_name": "Python 3", "language": "python", "name": "python3"},
        "language_info": {"name": "python"},
        "colab": {"provenance": [], "toc_visible": True},
    }
    nbformat.validate(notebook)
    return notebook


def _architectures() -> tuple[str, ...]:
    # Read from the registry's source, so rendering imports no Keras.
    tree = ast.parse((PACKAGE_DIR / "models" / "__init__.py").read_text())
    for node in tree.body:
        if isinstance(node, ast.Assign) and getattr(node.targets[0], "id", "") == "ARCHITECTURES":
            return tuple(ast.literal_eval(node.value))
    raise ValueError("kwsnb/models/__init__.py defines no ARCHITECTURES")


def render(name: str, template_dir: Path = TEMPLATE_DIR):
    """The notebook ``name`` (an architecture, or a name in ``SINGLE_NOTEBOOKS``)."""
    if name in SINGLE_NOTEBOOKS:
        path = template_dir / f"{name}.py"
        values = _common_values(f"{name}.ipynb")
    elif name in _architectures():
        path = template_dir / ARCHITECTURE_TEMPLATE
        values = architecture_values(name)
    else:
        raise ValueError(f"no notebook {name!r}; notebooks: {', '.join(notebook_names())}")
    return _notebook(parse_template(path.read_text()), values, str(path), name)


def notebook_names() -> list[str]:
    """Every notebook, in reading order: data set-up, the eight architectures, comparison."""
    return [SINGLE_NOTEBOOKS[0], *_architectures(), SINGLE_NOTEBOOKS[1]]


def rendered_text(name: str, template_dir: Path = TEMPLATE_DIR) -> str:
    import nbformat

    return nbformat.writes(render(name, template_dir)) + "\n"


def stale_notebooks(notebook_dir: Path = NOTEBOOK_DIR,
                    template_dir: Path = TEMPLATE_DIR) -> list[str]:
    """Notebooks whose committed file differs from what the templates render (or is missing)."""
    stale = []
    for name in notebook_names():
        path = notebook_dir / f"{name}.ipynb"
        if not path.is_file() or path.read_text() != rendered_text(name, template_dir):
            stale.append(name)
    return stale


def write_all(notebook_dir: Path = NOTEBOOK_DIR, template_dir: Path = TEMPLATE_DIR) -> list[Path]:
    """Renders every notebook into ``notebook_dir``; returns the files that changed."""
    changed = []
    for name in notebook_names():
        path = notebook_dir / f"{name}.ipynb"
        text = rendered_text(name, template_dir)
        if not path.is_file() or path.read_text() != text:
            path.write_text(text)
            changed.append(path)
    return changed


def badge_lines() -> list[str]:
    """One Markdown line per notebook: its name and "Open in Colab" badge (for the README)."""
    return [f"{colab_badge(f'{name}.ipynb')} [{name}](notebooks/{name}.ipynb)"
            for name in notebook_names()]


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m kwsnb.notebooks",
        description="Render notebooks/*.ipynb from notebooks/templates/ (the eight architecture "
                    "notebooks from one template).")
    parser.add_argument("--check", action="store_true",
                        help="write nothing; exit 1 when a notebook is not current")
    parser.add_argument("--badges", action="store_true",
                        help="print the README's Colab badge lines")
    args = parser.parse_args(argv)
    if args.badges:
        print("\n".join(badge_lines()))
        return 0
    if args.check:
        stale = stale_notebooks()
        if stale:
            print(f"not current: {', '.join(stale)}; run `python -m kwsnb.notebooks`",
                  file=sys.stderr)
            return 1
        print("every notebook is current")
        return 0
    changed = write_all()
    print(f"rendered {len(notebook_names())} notebooks; changed: "
          f"{', '.join(p.name for p in changed) or 'none'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
