"""``python -m kwsnb.sweep``: one notebook run with papermill over a grid of parameters.

::

    python -m kwsnb.sweep --out sweeps/quick --jobs 2 \\
        --grid model=svdf,tc_resnet --grid 'training_steps=["60,60","120,120"]' \\
        -p quick True -p data_source synthetic -p data_dir data/synthetic

Every combination of the ``--grid`` values (the product; a ``--grid_file`` JSON/YAML mapping of
name -> list of values, or a list of mappings, one per run, says the same in a file) is one run
of ``--notebook`` with those parameters and the fixed ``-p`` ones. ``model`` picks the
architecture's notebook: ``--notebook`` defaults to ``notebooks/{model}.ipynb`` (from the
current directory, else from kwsnb's checkout), and any
``{name}`` in it is filled in from the run's parameters (those not also notebook parameters are
consumed there). Values are read as papermill's ``-p`` reads them (``True``, ``None``, ``60``,
``0.5``, else the string); ``--grid name=[...]`` is a JSON list (for values holding commas).

Each run gets a folder under ``--out``, named by its grid values and a hash of all its
parameters: the executed notebook, ``report.json`` (copied from ``models_dir/<model>/``;
``models_dir`` defaults to the run folder), ``log.txt`` and ``run.json`` (parameters, status,
error, wall time). ``--jobs N`` runs N at a time, each in its own process (and kernel). A failed
run is recorded with its error and the others go on; running the same sweep again skips the runs
that finished (``--force`` reruns them) and retries the failed ones. At the end ``summary.csv``
(run, parameters, status, wall time, accuracy and size of every format in report.json) is
written and printed.

Notebooks run in the directory the sweep is started from, so relative paths in parameters mean
what they mean on the command line. Runs that share a ``data_dir`` that does not hold data yet
would all make it at once: make the data first (``00_data_setup.ipynb`` or one run).
"""
from __future__ import annotations

import argparse
import csv
import hashlib
import itertools
import json
import os
import re
import string
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

RUN_FILE = "run.json"
LOCK_FILE = "run.lock"  # held (flock) by the process running the run: the system drops it at death
BUSY_EXIT = 3  # the --execute child found its run held by another process
REPORT_FILE = "report.json"
SUMMARY_FILE = "summary.csv"
LOG_FILE = "log.txt"
DEFAULT_NOTEBOOK = "notebooks/{model}.ipynb"


class SweepError(Exception):
    """A problem with the sweep's command line, grid or notebook, explained for the user."""


@dataclass(frozen=True)
class Run:
    """One run of the sweep: the notebook (filled in), its parameters and its folder."""

    name: str
    notebook: Path
    parameters: dict[str, Any]  # passed to papermill
    grid: dict[str, Any]  # the run's grid values (also those consumed by --notebook)
    folder: Path

    @property
    def output(self) -> Path:
        return self.folder / self.notebook.name


# --- the grid --------------------------------------------------------------------------------

def parse_value(text: str) -> Any:
    """A command-line value as papermill's ``-p`` reads it: True, False, None, an int, a float,
    else the string as written (``60,60`` stays a string)."""
    constants = {"True": True, "False": False, "None": None}
    if text in constants:
        return constants[text]
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            pass
    return text


def parse_grid_option(option: str) -> tuple[str, list]:
    """``name=v1,v2`` (each value :func:`parse_value`) or ``name=[json list]``."""
    name, sep, values = option.partition("=")
    name = name.strip()
    if not sep or not name.isidentifier():
        raise SweepError(f"--grid {option!r}: write name=value1,value2 (or name=[JSON list])")
    values = values.strip()
    if values.startswith("["):
        try:
            parsed = json.loads(values)
        except ValueError as error:
            raise SweepError(f"--grid {option!r}: not a JSON list ({error})") from None
        if not isinstance(parsed, list):
            raise SweepError(f"--grid {option!r}: not a JSON list")
        return name, parsed
    return name, [parse_value(v.strip()) for v in values.split(",")]


def read_grid_file(path: str | Path) -> list[dict[str, Any]]:
    """A JSON or YAML file: a mapping name -> list of values (their product), or a list of
    mappings (one per run). Returns the combinations."""
    path = Path(path)
    try:
        text = path.read_text()
    except OSError as error:
        raise SweepError(f"--grid_file {path}: {error.strerror}") from None
    try:
        if path.suffix.lower() in (".yaml", ".yml"):
            import yaml

            content = yaml.safe_load(text)
        else:
            content = json.loads(text)
    except Exception as error:  # yaml.YAMLError, json.JSONDecodeError
        raise SweepError(f"--grid_file {path}: cannot be read ({error})") from None
    if isinstance(content, dict):
        lists = {k: v if isinstance(v, list) else [v] for k, v in content.items()}
        return combinations(lists)
    if isinstance(content, list) and all(isinstance(item, dict) for item in content):
        return [dict(item) for item in content]
    raise SweepError(f"--grid_file {path}: expected a mapping of name -> list of values, or a "
                     "list of mappings (one per run)")


def combinations(grid: dict[str, list]) -> list[dict[str, Any]]:
    """The product of the grid's values, in command-line order (the last name varies fastest)."""
    names = list(grid)
    return [dict(zip(names, values)) for values in itertools.product(*(grid[n] for n in names))]


def notebook_parameters(path: Path) -> dict[str, Any]:
    """The names of a notebook's ``parameters`` cell, with their defaults (papermill's view)."""
    import papermill

    try:
        inferred = papermill.inspect_notebook(str(path))
    except FileNotFoundError:
        raise SweepError(f"notebook {path} not found") from None
    except Exception as error:  # not JSON, no kernel name: papermill's own words, with the file
        raise SweepError(f"notebook {path} cannot be read by papermill: {error}") from None
    return {name: info.get("default") for name, info in inferred.items()}


def _slug(value: Any, limit: int = 40) -> str:
    text = Path(value).name if isinstance(value, str) and "/" in value else str(value)
    text = re.sub(r"[^A-Za-z0-9._-]+", "-", text).strip("-.") or "x"
    return text[:limit]


def run_name(grid: dict[str, Any], parameters: dict[str, Any], notebook: Path) -> str:
    """The run's folder name: its grid values, then a hash of everything that defines it (so a
    changed ``-p`` value is a new run, not a finished one)."""
    key = json.dumps({"notebook": str(notebook), "parameters": parameters, "grid": grid},
                     sort_keys=True, default=str)
    digest = hashlib.sha1(key.encode()).hexdigest()[:8]
    values = "_".join(f"{k}-{_slug(v)}" for k, v in grid.items())
    return f"{values}_{digest}" if values else digest


def _notebook_path(text: str, cwd: Path) -> Path:
    """A relative notebook path from ``cwd``, else from kwsnb's checkout (its notebooks/)."""
    from kwsnb.notebooks.render import REPO_ROOT

    path = Path(text).expanduser()
    if path.is_absolute():
        return path
    if not (cwd / path).is_file() and (REPO_ROOT / path).is_file():
        return REPO_ROOT / path
    return cwd / path


def plan(combos: list[dict[str, Any]], fixed: dict[str, Any], notebook: str, out: Path,
         cwd: Path | None = None) -> list[Run]:
    """The sweep's runs; a SweepError before anything runs when a notebook is missing or a
    parameter is not one of its notebook's."""
    cwd = Path.cwd() if cwd is None else cwd
    runs, names = [], set()
    known_cache: dict[Path, dict] = {}
    for combo in combos or [{}]:
        values = {**fixed, **combo}
        fields = {f for _, f, _, _ in string.Formatter().parse(notebook) if f}
        missing = sorted(fields - set(values))
        if missing:
            raise SweepError(f"--notebook {notebook} needs {', '.join(missing)}: add --grid "
                             f"{missing[0]}=... or -p {missing[0]} ... (e.g. model=svdf)")
        path = _notebook_path(notebook.format(**{f: values[f] for f in fields}), cwd)
        if path not in known_cache:
            if not path.is_file():
                raise SweepError(f"notebook {path} not found"
                                 + (" (is the model name right?)" if fields else ""))
            known_cache[path] = notebook_parameters(path)
        known = known_cache[path]
        parameters = {k: v for k, v in values.items() if k in known or k not in fields}
        unknown = sorted(set(parameters) - set(known))
        if unknown:
            raise SweepError(f"{path.name} has no parameter {', '.join(map(repr, unknown))}; its "
                             f"parameters: {', '.join(known)}")
        name = run_name(combo, parameters, path)
        if name in names:
            continue  # the same run twice in the grid
        names.add(name)
        folder = out / name
        if "models_dir" in known and "models_dir" not in parameters:
            parameters["models_dir"] = str(folder.resolve())
        runs.append(Run(name, path, parameters, combo, folder))
    return runs


# --- running ---------------------------------------------------------------------------------

def read_record(folder: Path) -> dict[str, Any] | None:
    try:
        return json.loads((folder / RUN_FILE).read_text())
    except (OSError, ValueError):
        return None


def _write_record(folder: Path, record: dict[str, Any]) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    temporary = folder / (RUN_FILE + ".tmp")
    temporary.write_text(json.dumps(record, indent=2, default=str))
    temporary.replace(folder / RUN_FILE)


def finished(run: Run) -> bool:
    record = read_record(run.folder)
    return bool(record and record.get("status") == "ok" and run.output.is_file())


def execute(run: Run, kernel: str = "python3", cell_timeout: float | None = None) -> dict:
    """Runs the notebook in this process (what each of ``--jobs`` processes does); writes and
    returns the run's record."""
    import papermill

    started = time.monotonic()
    record = {"name": run.name, "notebook": str(run.notebook), "parameters": run.parameters,
              "grid": run.grid, "status": "running", "error": "", "wall_s": None}
    _write_record(run.folder, record)
    try:
        papermill.execute_notebook(str(run.notebook), str(run.output), parameters=run.parameters,
                                   cwd=os.getcwd(), kernel_name=kernel, progress_bar=False,
                                   execution_timeout=cell_timeout)
        record["status"] = "ok"
    except papermill.PapermillExecutionError as error:
        record.update(status="failed", error=f"cell {error.exec_count}: {error.ename}: "
                                             f"{str(error.evalue).strip()}"[:2000])
    except Exception as error:  # a dead kernel, a timeout: still this run's failure only
        record.update(status="failed", error=f"{type(error).__name__}: {error}"[:2000])
    record["wall_s"] = round(time.monotonic() - started, 1)
    report = _find_report(run)
    if report is not None and report != run.folder / REPORT_FILE:
        (run.folder / REPORT_FILE).write_bytes(report.read_bytes())
    _write_record(run.folder, record)
    return record


def _find_report(run: Run) -> Path | None:
    """The run's report.json: models_dir/<model>/report.json as the notebook wrote it."""
    models_dir = run.parameters.get("models_dir")
    candidates = sorted(Path(models_dir).glob(f"*/{REPORT_FILE}")) if models_dir else []
    model = run.notebook.stem
    preferred = [c for c in candidates if c.parent.name == model]
    found = preferred or candidates
    return found[0] if found else None


def _run_in_process(run: Run, kernel: str, cell_timeout: float | None) -> dict:
    """One run in a child process (``python -m kwsnb.sweep --execute FOLDER``), its output in
    log.txt; a child that dies without a record is a failed run."""
    run.folder.mkdir(parents=True, exist_ok=True)
    spec = {"name": run.name, "notebook": str(run.notebook), "parameters": run.parameters,
            "grid": run.grid, "kernel": kernel, "cell_timeout": cell_timeout}
    (run.folder / "spec.json").write_text(json.dumps(spec, indent=2, default=str))
    started = time.monotonic()
    with (run.folder / LOG_FILE).open("w") as log:
        child = subprocess.run([sys.executable, "-m", "kwsnb.notebooks.sweep", "--execute",
                                str(run.folder)], stdout=log, stderr=subprocess.STDOUT)
    record = read_record(run.folder) or {}
    if child.returncode == BUSY_EXIT:  # its record is the other process's to write
        return {**record, "status": "busy", "error": "run by another process; not started twice"}
    if record.get("status") not in ("ok", "failed"):
        tail = (run.folder / LOG_FILE).read_text(errors="replace").strip().splitlines()[-5:]
        record = {**spec, "status": "failed", "wall_s": round(time.monotonic() - started, 1),
                  "error": f"the run's process exited with {child.returncode}: "
                           + " | ".join(" ".join(line.split()) for line in tail)}
        _write_record(run.folder, record)
    return record


def run_sweep(runs: Sequence[Run], jobs: int = 1, force: bool = False, kernel: str = "python3",
              cell_timeout: float | None = None, echo=print) -> list[dict]:
    """Runs what is not finished, ``jobs`` at a time; returns one summary row per run."""
    todo = [run for run in runs if force or not finished(run)]
    done = len(runs) - len(todo)
    echo(f"sweep: {len(runs)} run(s), {done} already finished, {len(todo)} to run, "
         f"{jobs} at a time")
    actions = {run.name: "skipped" for run in runs}

    def one(run: Run) -> None:
        holder = _running_elsewhere(run.folder)
        if holder is not None:
            actions[run.name] = "busy"
            echo(f"  busy {run.name}: already running ({holder}); not started twice")
            return
        echo(f"  start {run.name}")
        record = _run_in_process(run, kernel, cell_timeout)
        actions[run.name] = "ran"
        suffix = f": {record.get('error')}" if record.get("status") != "ok" else ""
        echo(f"  {record.get('status')} {run.name} ({record.get('wall_s')} s){suffix}")

    with ThreadPoolExecutor(max_workers=max(1, jobs)) as pool:
        list(pool.map(one, todo))
    return [summary_row(run, actions[run.name]) for run in runs]


# --- the summary -----------------------------------------------------------------------------

def summary_row(run: Run, action: str) -> dict[str, Any]:
    record = read_record(run.folder) or {}
    row: dict[str, Any] = {"run": run.name, "notebook": run.notebook.name}
    row.update({k: v for k, v in run.parameters.items() if k != "models_dir"})
    row.update({k: v for k, v in run.grid.items() if k not in row})
    row.update(status=record.get("status", "not run"), action=action,
               wall_s=record.get("wall_s"), error=record.get("error", ""))
    report_path = run.folder / REPORT_FILE
    if record.get("status") == "ok" and report_path.is_file():
        report = json.loads(report_path.read_text())
        row["params"] = report.get("params")
        for fmt, entry in report.get("formats", {}).items():
            row[f"{fmt}_accuracy"] = entry.get("accuracy")
            row[f"{fmt}_size_bytes"] = entry.get("size_bytes")
    return row


def write_summary(rows: list[dict], path: Path) -> list[str]:
    columns: list[str] = []
    for row in rows:
        columns += [c for c in row if c not in columns]
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=columns)
        writer.writeheader()
        writer.writerows(rows)
    return columns


def format_summary(rows: list[dict]) -> str:
    """The summary as a text table: grid values, status, wall time, then accuracy % and size
    (KB) per format; errors below the table."""
    if not rows:
        return "(no runs)"
    varying = [k for k in rows[0] if k not in ("run", "notebook", "status", "action", "wall_s",
                                                "error", "params")
               and not k.endswith(("_accuracy", "_size_bytes"))
               and len({json.dumps(r.get(k), default=str) for r in rows}) > 1]
    formats = []
    for row in rows:
        formats += [k[:-len("_accuracy")] for k in row
                    if k.endswith("_accuracy") and k[:-len("_accuracy")] not in formats]
    header = ["#", *varying, "status", "wall s"]
    for fmt in formats:
        short = fmt.replace("tflite_", "")
        header += [f"{short} acc%", f"{short} KB"]
    table = [header]
    for number, row in enumerate(rows, 1):
        status = row["status"] + (" (earlier)" if row["action"] == "skipped" else "")
        line = [str(number), *(str(row.get(k, "")) for k in varying), status,
                "" if row.get("wall_s") is None else f"{row['wall_s']:.0f}"]
        for fmt in formats:
            accuracy, size = row.get(f"{fmt}_accuracy"), row.get(f"{fmt}_size_bytes")
            line += ["" if accuracy is None else f"{100 * accuracy:.1f}",
                     "" if size is None else f"{size / 1024:.1f}"]
        table.append(line)
    widths = [max(len(r[i]) for r in table) for i in range(len(header))]
    text = "\n".join("  ".join(cell.ljust(w) for cell, w in zip(r, widths)).rstrip()
                     for r in table)
    errors = [f"#{n}: {r['error']}" for n, r in enumerate(rows, 1) if r.get("error")]
    return text + ("\n\nerrors:\n" + "\n".join(errors) if errors else "")


# --- command line ----------------------------------------------------------------------------

def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m kwsnb.sweep",
        description="Run a notebook with papermill over a grid of parameters.",
        epilog="e.g. python -m kwsnb.sweep --out sweeps/a --grid model=svdf,tc_resnet "
               "-p quick True -p data_source synthetic -p data_dir data/synthetic --jobs 2")
    parser.add_argument("--notebook", default=DEFAULT_NOTEBOOK,
                        help="the notebook; {name} is filled in from each run's parameters "
                             f"[{DEFAULT_NOTEBOOK}]")
    parser.add_argument("--grid", action="append", default=[], metavar="NAME=V1,V2",
                        help="values of one parameter (repeat for more; their product runs); "
                             "NAME=[JSON list] for values with commas")
    parser.add_argument("--grid_file", help="JSON/YAML: name -> list of values, or a list of "
                                            "parameter mappings (one per run)")
    parser.add_argument("-p", "--parameter", nargs=2, action="append", default=[],
                        metavar=("NAME", "VALUE"), help="a parameter every run gets")
    parser.add_argument("--out", help="(required) one folder per run under it, and "
                                                     f"{SUMMARY_FILE}")
    parser.add_argument("--jobs", type=int, default=1, help="runs at a time (processes) [1]")
    parser.add_argument("--force", action="store_true", help="rerun finished runs too")
    parser.add_argument("--kernel", default="python3", help="Jupyter kernel [python3]")
    parser.add_argument("--cell_timeout", type=float, default=None,
                        help="seconds a cell may take (default: no limit)")
    parser.add_argument("--dry_run", action="store_true", help="list the runs, run nothing")
    parser.add_argument("--execute", help=argparse.SUPPRESS)  # one run, in a child process
    return parser


def _hold_run_lock(folder: Path):
    """The open, locked run.lock of ``folder``; None when another process holds it."""
    handle = open(folder / LOCK_FILE, "a+")
    try:
        import fcntl
    except ImportError:  # Windows: runs are not locked there
        return handle
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        handle.close()
        return None
    handle.seek(0)
    handle.truncate()
    handle.write(f"process {os.getpid()} since {time.strftime('%Y-%m-%d %H:%M:%S')}\n")
    handle.flush()
    return handle


def _running_elsewhere(folder: Path) -> str | None:
    """Who holds the run's lock (a run of another sweep, or one whose sweep was killed and that
    is still stopping), else None."""
    if not (folder / LOCK_FILE).is_file():
        return None
    handle = _hold_run_lock(folder)
    if handle is None:
        return (folder / LOCK_FILE).read_text().strip() or "another process"
    handle.close()
    return None


def _end_with_parent() -> None:
    """The run (this process and its kernel) ends when the sweep that started it dies, however
    it dies (a SIGKILL cannot be caught there): a thread watches for the parent to change."""
    import threading

    parent = os.getppid()

    def watch():
        while os.getppid() == parent:
            time.sleep(0.5)
        import psutil  # ipykernel's dependency, so there wherever papermill runs

        for child in psutil.Process().children(recursive=True):  # the kernel
            try:
                child.kill()
            except psutil.Error:
                pass
        os._exit(1)

    threading.Thread(target=watch, daemon=True, name="end-with-parent").start()


def _execute_folder(folder: str) -> int:
    lock = _hold_run_lock(Path(folder))
    if lock is None:
        print(f"{folder} is being run by another process; not started twice", file=sys.stderr)
        return BUSY_EXIT
    _end_with_parent()
    spec = json.loads((Path(folder) / "spec.json").read_text())
    run = Run(spec["name"], Path(spec["notebook"]), spec["parameters"], spec["grid"],
              Path(folder))
    record = execute(run, kernel=spec["kernel"], cell_timeout=spec["cell_timeout"])
    return 0 if record["status"] == "ok" else 1


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.execute:
        return _execute_folder(args.execute)
    try:
        if not args.out:
            raise SweepError("--out is required: the folder the runs and the summary go to")
        if args.jobs < 1:
            raise SweepError("--jobs must be 1 or more")
        grid = dict(parse_grid_option(option) for option in args.grid)
        combos = combinations(grid) if grid else [{}]
        if args.grid_file:
            from_file = read_grid_file(args.grid_file)
            combos = [{**a, **b} for a in from_file for b in combos]
        fixed = {name: parse_value(value) for name, value in args.parameter}
        runs = plan(combos, fixed, args.notebook, Path(args.out))
    except SweepError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    if args.dry_run:
        for run in runs:
            print(f"{run.name}: {run.notebook.name} {json.dumps(run.parameters, default=str)}")
        return 0
    rows = run_sweep(runs, jobs=args.jobs, force=args.force, kernel=args.kernel,
                     cell_timeout=args.cell_timeout)
    path = Path(args.out) / SUMMARY_FILE
    write_summary(rows, path)
    print(format_summary(rows))
    print(f"\nsummary: {path}")
    return 0 if all(row["status"] == "ok" for row in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
