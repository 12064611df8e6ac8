"""The widgets as a learner meets them: JupyterLab in a real (headless) Chromium.

papermill runs every notebook but never renders a widget or sends a click. Here JupyterLab runs
on 127.0.0.1 with a throw-away token and a private settings folder, Chromium (Debian's
``chromium`` package, driven by Playwright's Python API: no browser download) opens a notebook
that uses ``kwsnb.notebooks.widgets`` on real clips (../shared/data's test folder when present, else the
offline TTS set) and the repository's int8 tc_resnet, runs it, and then does what a learner
does: picks another word, moves the clip slider, picks a clip to classify, uploads a recording,
records one through the microphone, and checks what the page shows after each step.
Screenshots go to ``test-output/browser/`` (override with ``KWSNB_TEST_OUTPUT``).

The microphone is Chromium's fake one playing a WAV file made from real clips (it loops the
file): a ``yes`` for the recorder, "yes ... no" for live detection with the int8 streaming
model; browsers that refuse the permission or have no microphone check the messages the
learner sees.

Skipped with the reason when Chromium or Playwright is missing (``.ci/run`` installs both).
"""
from __future__ import annotations

import json
import os
import re
import secrets
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import nbformat
import numpy as np
import pytest
import soundfile

from conftest import REAL_TEST_DIR

REPO = Path(__file__).resolve().parents[1]
CHROMIUM = os.environ.get("KWSNB_CHROMIUM") or shutil.which("chromium") or \
    shutil.which("chromium-browser")
OUTPUT_DIR = Path(os.environ.get("KWSNB_TEST_OUTPUT", REPO / "test-output")) / "browser"
MODEL_DIR = REPO / "models" / "tc_resnet"
# Flags that keep headless Chromium off the network (this machine's network is closed) and
# work as root in a container.
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--disable-dev-shm-usage"]
# Chromium's fake microphone: no permission prompt, a fake device playing a file.
FAKE_MICROPHONE_ARGS = ["--use-fake-ui-for-media-stream", "--use-fake-device-for-media-stream",
                        "--autoplay-policy=no-user-gesture-required"]
# A speaker (in the real test clips) whose "yes" and "no" tc_resnet's int8 models hear clearly:
# the smoothed probability peaks >= 0.67 at every packet phase, against the 0.6 threshold.
SPEAKER = "422d3197_nohash_0"
TIMEOUT_MS = int(os.environ.get("KWSNB_BROWSER_TIMEOUT_MS", 120_000))  # first JupyterLab load, kernel start and TensorFlow import on 2 cores

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def playwright_api():
    if not CHROMIUM:
        pytest.skip("no Chromium found (install Debian's 'chromium' package, or set "
                    "KWSNB_CHROMIUM to its executable): the browser test needs it")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        pytest.skip("playwright is not installed (pip install -e '.[test]')")
    with sync_playwright() as api:
        yield api


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="module")
def clips_dir(request) -> Path:
    """Real test clips when ../shared/data is here, else the offline TTS set."""
    if REAL_TEST_DIR.is_dir():
        return REAL_TEST_DIR
    return request.getfixturevalue("synthetic_dir")


def _word(clips_dir: Path, word: str) -> np.ndarray:
    """The test speaker's ``word`` (the first clip of the word where that speaker is absent)."""
    from kwsnb.data import load_clip

    path = clips_dir / word / f"{SPEAKER}.flac"
    if not path.is_file():
        path = sorted((clips_dir / word).glob("*.*"))[0]
    return load_clip(path)


def _fake_microphone_wav(path: Path, parts) -> Path:
    """A 16-bit WAV for --use-file-for-fake-audio-capture: ``parts`` are clips or seconds of
    quiet noise (-60 dBFS, a real room is never digital zero)."""
    rng = np.random.default_rng(0)
    audio = np.concatenate([rng.normal(0, 1e-3, int(part * 16000)).astype(np.float32)
                            if isinstance(part, (int, float)) else part for part in parts])
    soundfile.write(path, audio, 16000, subtype="PCM_16")
    return path


def _widget_notebook(folder: Path, clips_dir: Path) -> Path:
    """A notebook a teacher could write: browse the clips, classify them with the int8 model."""
    labels = json.loads((MODEL_DIR / "flags.json").read_text())["labels"]
    cells = [
        nbformat.v4.new_markdown_cell("# Widgets on real clips"),
        nbformat.v4.new_code_cell(
            "from pathlib import Path\n"
            "from kwsnb.notebooks import widgets\n"
            "from kwsnb.data import load_clip, scan_folder\n"
            f"CLIPS = Path({str(clips_dir)!r})\n"
            f"MODEL = Path({str(MODEL_DIR / 'tflite_int8' / 'model.tflite')!r})\n"
            f"LABELS = {labels!r}"),
        nbformat.v4.new_code_cell("browser = widgets.clip_browser(CLIPS)"),
        nbformat.v4.new_code_cell(
            "folder = scan_folder(CLIPS)\n"
            "chosen = [(LABELS.index(word), path) for word in LABELS[2:] if word in folder.words\n"
            "          for path in sorted(folder.words[word])[:3]]\n"
            "clips = [load_clip(path) for _, path in chosen]\n"
            "clip_labels = [label for label, _ in chosen]\n"
            "classify = widgets.classifier(MODEL, clips, LABELS, clip_labels)"),
        nbformat.v4.new_code_cell("compare = widgets.recording_vs_data(CLIPS)"),
    ]
    notebook = nbformat.v4.new_notebook(cells=cells, metadata={
        "kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"}})
    path = folder / "widgets.ipynb"
    nbformat.write(notebook, path)
    return path


def _notebook(path: Path, *sources: str) -> Path:
    cells = [nbformat.v4.new_code_cell(source) for source in sources]
    nbformat.write(nbformat.v4.new_notebook(cells=cells, metadata={
        "kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"}}),
        path)
    return path


def _live_notebook(folder: Path) -> Path:
    """Live detection with the int8 streaming model, at the model's operating point."""
    labels = json.loads((MODEL_DIR / "flags.json").read_text())["labels"]
    return _notebook(
        folder / "live.ipynb",
        "from kwsnb.notebooks import widgets\n"
        f"LABELS = {labels!r}\n"
        f"live = widgets.live_detector({str(MODEL_DIR / 'tflite_stream_external_int8')!r}, "
        f"LABELS, train_dir={str(MODEL_DIR)!r})\n"
        "live")


def _denied_notebook(folder: Path) -> Path:
    return _notebook(folder / "denied.ipynb",
                     "from kwsnb.notebooks import widgets\nrecorder = widgets.recorder()\nrecorder")


@pytest.fixture(scope="module")
def jupyterlab(tmp_path_factory, clips_dir):
    """JupyterLab on 127.0.0.1 serving a folder with the widget notebook; yields its URL."""
    root = tmp_path_factory.mktemp("lab")
    notebook = _widget_notebook(root, clips_dir)
    _live_notebook(root)
    _denied_notebook(root)
    port, token = _free_port(), secrets.token_hex(16)
    private = root / ".jupyter"
    env = {**os.environ, "JUPYTER_CONFIG_DIR": str(private / "config"),
           "JUPYTER_RUNTIME_DIR": str(private / "runtime"),
           "JUPYTERLAB_SETTINGS_DIR": str(private / "settings"),
           "JUPYTERLAB_WORKSPACES_DIR": str(private / "workspaces"),
           "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO),
                                                       os.environ.get("PYTHONPATH")]))}
    env.pop("MPLBACKEND", None)  # the kernel draws inline PNGs
    news = private / "settings" / "@jupyterlab" / "apputils-extension"
    news.mkdir(parents=True)  # no "get notified about Jupyter news?" toast over the widgets
    (news / "notification.jupyterlab-settings").write_text(json.dumps({"fetchNews": "false"}))
    log = (root / "jupyterlab.log").open("w")
    server = subprocess.Popen(
        [sys.executable, "-m", "jupyter", "lab", "--no-browser", f"--port={port}",
         "--ServerApp.ip=127.0.0.1", f"--IdentityProvider.token={token}",
         f"--ServerApp.root_dir={root}", "--ServerApp.open_browser=False",
         "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate",
         "--ServerApp.allow_root=True"],  # CI containers run as root
        env=env, stdout=log, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 90
        while True:
            try:
                with urllib.request.urlopen(f"{base}/api/status?token={token}", timeout=2):
                    break
            except OSError:
                if server.poll() is not None or time.monotonic() > deadline:
                    log.flush()
                    pytest.fail("JupyterLab did not start:\n"
                                + (root / "jupyterlab.log").read_text()[-3000:])
                time.sleep(0.5)
        # A workspace per notebook: pages in other browsers must not reopen each other's tabs.
        yield f"{base}/lab/workspaces/{{0}}/tree/{{0}}.ipynb?token={token}"
    finally:
        server.terminate()
        try:
            server.wait(timeout=20)
        except subprocess.TimeoutExpired:
            server.kill()
        log.close()


def _open(browser, url: str, name: str, ready, **context_options):
    """A new page of ``browser`` on ``url`` with every cell run; ``ready(page)`` waits for what
    the notebook shows when it is done."""
    context = browser.new_context(viewport={"width": 1400, "height": 1000}, **context_options)
    page = context.new_page()
    page.set_default_timeout(TIMEOUT_MS)
    console_errors = []
    page.on("console", lambda message: console_errors.append(message.text)
            if message.type == "error" else None)
    try:
        page.goto(url)
        page.locator(".jp-Notebook").first.wait_for()
        _run_all_cells(page)
        ready(page)
        _wait_for_idle_kernel(page)
    except Exception:  # what the page showed when it went wrong, for the person reading the log
        _shot(page, f"{name}_setup_failure")
        (OUTPUT_DIR / f"{name}_setup_failure.html").write_text(page.content())
        raise
    page.console_errors = console_errors
    return page


@pytest.fixture(scope="module")
def page(playwright_api, jupyterlab, clips_dir, tmp_path_factory):
    """The widget notebook open in Chromium (its microphone plays a "yes"), every cell run,
    widgets rendered."""
    OUTPUT_DIR.mkdir(parents=True, exist_ok=True)
    yes = _fake_microphone_wav(tmp_path_factory.mktemp("microphone") / "yes.wav",
                               [0.25, _word(clips_dir, "yes"), 0.25])
    browser = playwright_api.chromium.launch(
        executable_path=CHROMIUM, headless=True,
        args=CHROMIUM_ARGS + FAKE_MICROPHONE_ARGS + [f"--use-file-for-fake-audio-capture={yes}"])

    def ready(page):  # both widgets' first views: the browser's caption, the classifier's verdict
        page.get_by_text(re.compile(r"clip 1 of \d+")).first.wait_for()
        page.get_by_text("the model says").first.wait_for()

    yield _open(browser, jupyterlab.format("widgets"), "widgets", ready)
    browser.close()


@pytest.fixture(scope="module")
def microphone_browser(playwright_api, clips_dir, tmp_path_factory):
    """A Chromium whose fake microphone says "yes", then "no" (looped) and which refuses a
    permission nobody granted (``--deny-permission-prompts``): a page's context grants it."""
    OUTPUT_DIR.mkdir(parents=True, exist_ok=True)
    two_words = _fake_microphone_wav(
        tmp_path_factory.mktemp("microphone") / "yes_no.wav",
        [0.5, _word(clips_dir, "yes"), 1.0, _word(clips_dir, "no"), 1.0])
    browser = playwright_api.chromium.launch(
        executable_path=CHROMIUM, headless=True,
        args=CHROMIUM_ARGS + ["--use-fake-device-for-media-stream", "--deny-permission-prompts",
                              "--autoplay-policy=no-user-gesture-required",
                              f"--use-file-for-fake-audio-capture={two_words}"])
    yield browser
    browser.close()


def _wait_for_idle_kernel(page) -> None:
    # JupyterLab 4's toolbar indicator holds the kernel's status.
    page.wait_for_function(
        "() => { const el = document.querySelector('.jp-Notebook-ExecutionIndicator');"
        " return el && el.dataset.status === 'idle'; }")


def _run_all_cells(page) -> None:
    """Run > Run All Cells, as a learner does, until every code cell has run. JupyterLab may
    ask for a kernel (when it opened the notebook before the kernel list arrived) and drops a
    queue it had while the kernel session changed: both are handled as a learner would."""
    deadline = time.monotonic() + TIMEOUT_MS / 1000
    while time.monotonic() < deadline:
        select = page.locator(".jp-Dialog").get_by_role("button", name="Select")
        if select.count():
            select.click()
        _wait_for_idle_kernel(page)
        page.wait_for_timeout(2000)  # a dialog or a reconnection shows up within this
        if page.locator(".jp-Dialog").count():
            continue
        prompts = page.locator(".jp-CodeCell .jp-InputPrompt").all_inner_texts()
        if prompts and all(re.search(r"\[\d+\]", prompt) for prompt in prompts):
            return
        if not any("*" in prompt for prompt in prompts):
            page.locator(".lm-MenuBar-itemLabel", has_text=re.compile(r"^Run$")).click()
            page.locator(".lm-Menu-itemLabel", has_text=re.compile(r"^Run All Cells$")).click()
            page.wait_for_timeout(1000)
    raise AssertionError("the notebook's cells did not all run")


def _cell_output(page, index: int):
    """The output area of code cell ``index`` (0-based, code cells only)."""
    return page.locator(".jp-CodeCell").nth(index).locator(".jp-Cell-outputArea")


def _shot(page, name: str) -> Path:
    path = OUTPUT_DIR / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    return path


def _audio_seconds(output) -> list[float]:
    """Durations of the audio players in an output area, once the browser has decoded them."""
    players = output.locator("audio")
    players.first.wait_for()
    return players.evaluate_all(
        "els => Promise.all(els.map(el => el.readyState >= 1 ? el.duration : new Promise("
        "resolve => { el.addEventListener('loadedmetadata', () => resolve(el.duration),"
        " {once: true}); el.load(); })))")


def _press_play(page, output) -> None:
    """Clicks the player's play button (its left end) and checks the clip really plays."""
    player = output.locator("audio").first
    box = player.bounding_box()
    player.click(position={"x": min(24, box["width"] / 2), "y": box["height"] / 2})
    page.wait_for_function("el => !el.paused && el.currentTime > 0 || el.ended",
                           arg=player.element_handle(), timeout=10_000)


def _no_widget_errors(page) -> None:
    text = page.locator(".jp-Notebook").inner_text()
    assert "Error displaying widget" not in text
    assert "Traceback" not in text
    assert not page.locator(".jp-RenderedText[data-mime-type='application/vnd.jupyter.stderr']"
                            ).filter(has_text=re.compile("Error|Exception")).count()


def _shows(output, text: str) -> None:
    """Waits until the output area shows ``text`` (display updates replace elements, so the
    area is searched again, not an element held from before)."""
    output.get_by_text(text).first.wait_for()


def _first_image(output):
    return output.locator("img").first


def test_clip_browser_follows_the_word_and_the_slider(page, clips_dir):
    from playwright.sync_api import expect

    from kwsnb.data import scan_folder

    folder = scan_folder(clips_dir)
    words = sorted(folder.words)
    output = _cell_output(page, 1)
    _shows(output, f"{words[0]}, clip 1 of {len(folder.words[words[0]])}: {words[0]}/")
    assert _audio_seconds(output) == [pytest.approx(1.0, abs=0.01)]
    first_image = _first_image(output).get_attribute("src")

    word = "yes" if "yes" in words else words[-1]
    clips = sorted(folder.words[word])
    output.locator(".widget-dropdown select").select_option(word)
    _shows(output, f"{word}, clip 1 of {len(clips)}: {word}/{clips[0].name}")
    # the waveform and MFCCs of the new clip
    expect(_first_image(output)).not_to_have_attribute("src", first_image)
    word_image = _first_image(output).get_attribute("src")

    output.locator(".widget-slider .noUi-handle").focus()
    page.keyboard.press("ArrowRight")
    page.keyboard.press("ArrowRight")
    _shows(output, f"{word}, clip 3 of {len(clips)}: {word}/{clips[2].name}")
    expect(output.locator(".widget-readout")).to_have_text("2")
    expect(_first_image(output)).not_to_have_attribute("src", word_image)
    assert _audio_seconds(output) == [pytest.approx(1.0, abs=0.01)]
    _press_play(page, output)
    output.screenshot(path=str(OUTPUT_DIR / "clip_browser.png"))
    _no_widget_errors(page)


def test_classifier_updates_its_probabilities(page):
    from playwright.sync_api import expect

    output = _cell_output(page, 2)
    first = output.get_by_text("the model says").first.inner_text()
    assert re.match(r"clip #0 \(yes\): the model says \S+ \(\d+%\)", first), first
    chart = _first_image(output).get_attribute("src")
    select = output.locator(".widget-dropdown select")
    options = select.locator("option").all_inner_texts()  # ipywidgets writes spaces as nbsp
    names = [name.replace("\xa0", " ") for name in options]
    assert names[0] == "#0 (yes)" and len(names) >= 3 * 7
    index = next(i for i, name in enumerate(names) if "(stop)" in name)
    select.select_option(label=options[index])
    target = names[index]
    _shows(output, f"clip {target}: the model says")
    text = output.get_by_text("the model says").first.inner_text()
    assert re.search(r"the model says \S+ \(\d+%\) — (right|wrong, it is \S+)", text), text
    expect(_first_image(output)).not_to_have_attribute("src", chart)  # new probabilities
    assert _audio_seconds(output) == [pytest.approx(1.0, abs=0.01)]
    output.screenshot(path=str(OUTPUT_DIR / "classifier_clip.png"))
    _no_widget_errors(page)


def _upload(page, output, path: Path) -> None:
    """Presses the upload button and picks ``path`` in the file chooser it opens."""
    with page.expect_file_chooser() as chooser:
        output.locator(".widget-upload").click()
    chooser.value.set_files(str(path))


def test_classifier_takes_an_uploaded_recording(page, clips_dir, tmp_path):
    """A 3 s recording with a word in the middle, uploaded through the FileUpload button."""
    from kwsnb.data import load_clip, scan_folder

    word_path = sorted(scan_folder(clips_dir).words["left"])[0]
    clip = load_clip(word_path)
    recording = np.concatenate([np.zeros(16000, np.float32), clip,
                                np.zeros(16000, np.float32)])
    upload = tmp_path / "my_recording.wav"
    soundfile.write(upload, recording, 16000)
    output = _cell_output(page, 2)
    chart = _first_image(output).get_attribute("src")
    _upload(page, output, upload)
    _shows(output, "upload: my_recording.wav: the model says")
    # The caption changes last: the chart is already the upload's.
    assert _first_image(output).get_attribute("src") != chart
    output.screenshot(path=str(OUTPUT_DIR / "classifier_upload.png"))
    assert _audio_seconds(output) == [pytest.approx(1.0, abs=0.01)]  # its loudest second

    bad = tmp_path / "notes.txt"
    bad.write_text("not audio")
    _upload(page, output, bad)
    output.get_by_text("notes.txt: not an audio file").wait_for()
    _shot(page, "notebook")
    _no_widget_errors(page)
    widget_errors = [e for e in page.console_errors if "widget" in e.lower()]
    assert not widget_errors, widget_errors


def test_classifier_classifies_a_recording_from_the_microphone(page):
    """"record" beside "upload": 2 s from Chromium's fake microphone (a real "yes"), cut to its
    loudest second, classified by the int8 model with the same verdict line and chart."""
    output = _cell_output(page, 2)
    button = output.locator(".kwsnb-mic-button")
    assert button.inner_text() == "● record 2.0 s"
    button.click()
    _shows(output, "recorded: the model says")
    verdict = output.get_by_text("recorded: the model says").first.inner_text()
    assert re.fullmatch(r"recorded: the model says yes \(\d+%\)", verdict.strip()), verdict
    _first_image(output).wait_for()  # the recording's chart
    assert _audio_seconds(output) == [pytest.approx(1.0, abs=0.01)]  # its loudest second
    output.locator(".kwsnb-mic-status").get_by_text("recorded 2.0 s").wait_for()
    output.screenshot(path=str(OUTPUT_DIR / "classifier_record.png"))
    _no_widget_errors(page)


def test_live_mode_detects_both_words_and_frees_the_microphone(microphone_browser, jupyterlab):
    """Live mode over "yes ... no": the int8 streaming model, 20 ms packets through the stream
    runner, detections at the model's operating point; stop frees the microphone."""
    page = _open(microphone_browser, jupyterlab.format("live"), "live",
                 lambda page: page.locator(".kwsnb-mic-button").wait_for(),
                 permissions=["microphone"])
    output = _cell_output(page, 0)
    button = output.locator(".kwsnb-mic-button")
    assert button.inner_text() == "● listen"
    # Whether the microphone is in use: Chromium's fake devices count live tracks here.
    page.evaluate("""() => { const open = navigator.mediaDevices.getUserMedia.bind(
        navigator.mediaDevices); window.liveTracks = [];
        navigator.mediaDevices.getUserMedia = async c => { const s = await open(c);
        window.liveTracks.push(...s.getTracks()); return s; }; }""")
    button.click()
    detected = output.locator(".kwsnb-mic-detections")
    detected.filter(has_text=re.compile(r"yes at .*no at|no at .*yes at")).wait_for(
        timeout=30_000)  # the file is 4.5 s, looped
    assert page.evaluate("() => window.liveTracks.map(t => t.readyState)") == ["live"]
    text = detected.inner_text()
    assert set(re.findall(r"(\w+) at \d", text)) <= {"yes", "no"}, text  # nothing else fired
    output.screenshot(path=str(OUTPUT_DIR / "live.png"))
    button.click()
    output.locator(".kwsnb-mic-status").get_by_text("stopped: the microphone is free").wait_for()
    assert page.evaluate("() => window.liveTracks.map(t => t.readyState)") == ["ended"]
    assert button.inner_text() == "● listen"
    _no_widget_errors(page)
    page.context.close()


def test_recorder_says_what_to_do_when_permission_is_refused(microphone_browser, jupyterlab):
    page = _open(microphone_browser, jupyterlab.format("denied"), "denied",
                 lambda page: page.locator(".kwsnb-mic-button").wait_for())
    output = _cell_output(page, 0)
    output.locator(".kwsnb-mic-button").click()
    message = output.locator(".kwsnb-mic-error")
    message.get_by_text("Microphone permission was refused").wait_for()
    assert "press the button again, or upload a recording instead" in message.inner_text()
    output.screenshot(path=str(OUTPUT_DIR / "recorder_denied.png"))
    _no_widget_errors(page)
    page.context.close()


def test_recording_sits_beside_the_data_sets_clip(page):
    """00_data_setup's "your own voice": record, then hear and see it beside the data set's."""
    output = _cell_output(page, 3)
    _shows(output, "the data set's yes: press record and say it")
    assert len(_audio_seconds(output)) == 1
    output.locator(".kwsnb-mic-button").click()
    _shows(output, "your recording beside the data set's yes")
    assert _audio_seconds(output) == [pytest.approx(1.0, abs=0.01)] * 2
    output.screenshot(path=str(OUTPUT_DIR / "recording_vs_data.png"))
    _no_widget_errors(page)


def test_recorder_says_what_to_do_without_a_microphone(playwright_api, jupyterlab):
    """Chromium with no fake device on a machine without a sound card: NotFoundError."""
    browser = playwright_api.chromium.launch(
        executable_path=CHROMIUM, headless=True,
        args=CHROMIUM_ARGS + ["--use-fake-ui-for-media-stream"])
    try:
        page = _open(browser, jupyterlab.format("denied"), "no_microphone",
                     lambda page: page.locator(".kwsnb-mic-button").wait_for())
        devices = page.evaluate("async () => (await navigator.mediaDevices.enumerateDevices())"
                                ".filter(d => d.kind === 'audioinput').length")
        if devices:
            pytest.skip(f"this machine has {devices} audio input device(s)")
        output = _cell_output(page, 0)
        output.locator(".kwsnb-mic-button").click()
        output.locator(".kwsnb-mic-error").get_by_text("No microphone found").wait_for()
        assert "or upload a recording instead" in output.locator(".kwsnb-mic-error").inner_text()
        _no_widget_errors(page)
    finally:
        browser.close()
