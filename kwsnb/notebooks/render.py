"""The notebooks rendered from their templates.

Rendering (``python -m kwsnb.notebooks`` rewrites ``notebooks/*.ipynb``; ``--check`` only
reports stale ones, as ``tests/test_notebooks.py`` does):

* ``notebooks/templates/*.py`` are the sources, in the "percent" format (``# %%`` starts a code
  cell, ``# %% [markdown]`` a Markdown cell whose lines start with ``# ``, ``tags=[...]`` after
  either sets cell tags). ``{{name}}`` placeholders are filled in at rendering.
* ``architecture.py`` renders once per architecture (``kwsnb.models.ARCHITECTURES``) into
  ``notebooks/<name>.ipynb``, so the eight notebooks cannot drift apart. What differs is prose
  taken from the model module: its docstring (the seed's structure, what kwsnb changed to stream
  it, notes on the seed's command line) and ``CHANGES``; and the seed's command line and
  published figures from ``kwsnb.models.seed``. Modules are read as text (``ast``), so rendering needs
  neither TensorFlow nor Keras.
* ``00_data_setup.py`` and ``compare_30k.py`` render as themselves.
* Every notebook starts with a setup cell that installs kwsnb from ``REPO_URL`` where it is not
  importable (Colab), and has a ``parameters`` cell for papermill whose defaults are the seed's
  full recipe; ``quick = True`` selects ``QUICK`` (a few minutes on 2 CPU cores).
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

PACKAGE_DIR = Path(__file__).resolve().parents[1]  # kwsnb/
REPO_ROOT = PACKAGE_DIR.parent
NOTEBOOK_DIR = REPO_ROOT / "notebooks"
TEMPLATE_DIR = NOTEBOOK_DIR / "templates"
ARCHITECTURE_TEMPLATE = "architecture.py"
SINGLE_NOTEBOOKS = ("00_data_setup", "compare_30k")
# Said up front in an architecture's notebook, before the details its module docstring gives.
RECIPE_NOTES = {
    "inception": "**The seed's command line has a bug.** A line continuation is missing after "
                 "`--cnn2_kernel_sizes '3,5,5'`, so its last three flags — `--cnn_strides "
                 "'2,2,1'`, `--dropout 0.0` and `--bn_scale 0` — were dropped and never reached "
                 "the seed's program. kwsnb uses the meant values (the command above shows them "
                 "in place). In detail:",
}

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
    from kwsnb.models import seed

    lines = [line for line in seed.SEED_COMMANDS[name].strip().splitlines()]
    body = " \\\n".join(f"    {line}" for line in lines)
    return f"python -m kws_streaming.train.model_train_eval \\\n{body}"


def _published_table(name: str) -> str:
    from kwsnb.models import seed

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
    from kwsnb.models import seed

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


def architectures() -> tuple[str, ...]:
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
    elif name in architectures():
        path = template_dir / ARCHITECTURE_TEMPLATE
        values = architecture_values(name)
    else:
        raise ValueError(f"no notebook {name!r}; notebooks: {', '.join(notebook_names())}")
    return _notebook(parse_template(path.read_text()), values, str(path), name)


def notebook_names() -> list[str]:
    """Every notebook, in reading order: data set-up, the eight architectures, comparison."""
    return [SINGLE_NOTEBOOKS[0], *architectures(), SINGLE_NOTEBOOKS[1]]


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


