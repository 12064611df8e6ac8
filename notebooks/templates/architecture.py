# Template of the eight architecture notebooks: `python -m kwsnb.notebooks` renders it into
# notebooks/<architecture>.ipynb with the {{placeholders}} filled in from the model module's
# docstring and CHANGES and from kwsnb.models.seed (see kwsnb/notebooks/). Edit this file, not the
# notebooks.

# %% [markdown]
# # {{name}}
#
# {{colab_badge}}
#
# {{summary}}
#
# This notebook trains it with the seed's recipe (Google Research's kws_streaming, "models with
# 30k parameters"), looks at how it learned, exports it to TFLite (float, dynamic range, int8),
# measures every format, streams it 20 ms at a time over a long recording, and lets you try it
# on a clip of your own. All the work is done by the `kwsnb` package; the notebook only calls it
# and shows the results.

# %%
# Setup: installs kwsnb where it is missing (Colab, a fresh environment); elsewhere nothing.
# It keeps the runtime's TensorFlow, Keras, numpy and ipywidgets: no restart needed.
import importlib.util
import subprocess
import sys

if importlib.util.find_spec("kwsnb") is None:
    if "google.colab" in sys.modules and importlib.util.find_spec("tensorflow") is None:
        raise RuntimeError("This Colab runtime has no TensorFlow (Colab's TPU runtime): choose "
                           "Runtime > Change runtime type > a GPU (or CPU), then run this again")
    subprocess.check_call([sys.executable, "-m", "pip", "install", "-q", "{{install_spec}}"])
if "google.colab" in sys.modules:  # kwsnb's widgets need Colab's custom widget manager
    from google.colab import output

    output.enable_custom_widget_manager()

# %% [markdown]
# ## Parameters
#
# The defaults are the seed's full recipe: Speech Commands V2 (downloaded, 2.3 GB), 80,000
# training steps, every TFLite format — hours on a CPU, about an hour on a GPU. `quick = True`
# runs every step in a few minutes on two CPU cores (it learns little: a smoke run). With
# papermill: `papermill {{name}}.ipynb out.ipynb -p quick True -p data_source synthetic`.

# %% tags=["parameters"]
data_source = "speech_commands"  # "speech_commands" (official V2), "synthetic" (offline TTS), or a URL / archive / folder
data_dir = "data/speech_commands_v2"  # where the data is (or is put)
models_dir = "models"  # the model is trained into models_dir/{{name}}
training_steps = None  # None: the seed's "20000,20000,20000,20000"
learning_rates = None  # None: the seed's "0.001,0.0005,0.0001,0.00002" (one per stage)
wanted_words = None  # None: the seed's ten keywords, plus _silence_ and _unknown_
test_dir = None  # also score on a folder in the official test-set layout
test_exclude = ""  # its label folders to leave out, e.g. "go,on,off"
quick = False  # True: the few-minute preset (kwsnb.notebooks.QUICK)
recipe = "seed"  # "sc_lite10": the flags and 8,000 steps of docs/results_sc_lite10.md (kwsnb.models.seed.sc_lite10_recipe)
distribute = "none"  # "mirrored" (all GPUs), "tpu" (a TPU TensorFlow sees; not Colab's TPU runtime, which has no TensorFlow): README "More hardware"

# %%
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
from IPython.display import Audio, Markdown

from kwsnb import evaluate, micro, models, notebooks, streaming
from kwsnb.evaluate import detect
from kwsnb.models import seed
from kwsnb.notebooks import plots, widgets
from kwsnb.tflite import stack
from kwsnb.data.long_audio import make_long_recording
from kwsnb import train as training

MODEL = "{{name}}"
print(stack.runtime_summary())
run = notebooks.settings(quick, training_steps, learning_rates, recipe)
run

# %% [markdown]
# ## The architecture
#
# {{structure}}
#
# kwsnb builds it from the seed's flags, with the MFCC front end inside the model: it takes raw
# 16 kHz audio and returns one logit per label.

# %%
model = models.build(MODEL)
plots.model_summary(model, seed_params=models.architecture(MODEL).SEED_PARAMS)

# %%
plots.parameters_per_layer(model);

# %% [markdown]
# ### What kwsnb changed so that it streams
#
# In one line: {{changes}}.
#
# {{streaming_changes}}

# %% [markdown]
# ## The seed's recipe
#
# The seed's command line for {{name}} ({{seed_source}}), as `kwsnb.models.seed.seed_command` runs it
# with `python -m kwsnb.train` (the module name is the only difference):
#
# ```bash
# {{seed_command}}
# ```
#
# {{command_notes}}
#
# What the seed published for it (Speech Commands V2, 12 labels; "quant" is dynamic-range
# quantization; latency on a Pixel 4 phone):
#
# {{published_table}}

# %% [markdown]
# ## Data
#
# `00_data_setup.ipynb` looks at the data in detail. Here it only has to be there: an existing
# Speech Commands folder in `data_dir` is used as it is, otherwise `data_source` makes one.

# %%
data_dir = notebooks.prepare_data(data_source, data_dir, quick=quick)

# %% [markdown]
# ## Training
#
# The seed's command line, run by `kwsnb.train` (only the steps change in the quick preset).
# It keeps the weights with the best validation accuracy, logs to TensorBoard
# (`models_dir/{{name}}/logs`) and resumes where it stopped if the kernel dies: run the cell
# again. A `models_dir` that already holds a finished {{name}} run (the repository's `models/`
# does) is used as it is: training is skipped.

# %%
argv = seed.seed_command(MODEL, str(data_dir), str(models_dir), steps=run.steps,
                         learning_rates=run.learning_rates,
                         extra=run.training_flags(wanted_words, distribute))
flags = notebooks.train(argv)
train_dir = Path(flags["train_dir"])

# %%
plots.training_curves(train_dir, title=f"{MODEL}: training");

# %% [markdown]
# ### Which words it confuses
#
# The trained Keras model on the test clips (the data set's testing split, or `test_dir`):
# rows are the true labels, columns what the model said.

# %% tags=["figure:confusion"]
model, flags = training.load_trained_model(train_dir)
labels = flags["labels"]
test_audio, test_labels, test_name = notebooks.test_clips(flags, test_dir, test_exclude)
predictions = model.predict(test_audio, batch_size=100, verbose=0).argmax(-1)
plots.confusion_matrix(test_labels, predictions, labels, title=f"{MODEL} on {test_name}");

# %% [markdown]
# ## Export, quantize, measure
#
# `kwsnb.evaluate` exports the model to TFLite and measures each format on the same clips:
#
# - **float**: raw audio in, float32 throughout;
# - **dynamic range**: the seed's "quant" — int8 weights, float activations;
# - **int8**: weights and activations int8, calibrated on training clips; the MFCC front end
#   stays float (quantizing it ruins the features), so audio goes in and logits come out as
#   float32. Coefficient 0 of the seed's MFCCs (the log energy) spans about ten times the
#   others' range, and one int8 scale must serve them all; training with
#   `--normalize_features 1` (add it to `extra=`) centres the coefficients and caps
#   coefficient 0, so int8 tracks float (docs/sc_lite9_findings.md has the numbers);
# - **int8, MFCC in**: the body alone, for microcontrollers that compute MFCCs themselves;
# - **stream** formats: one 20 ms packet per call, the model's memory either passed in and out
#   (external state) or kept inside (internal state).
#
# Latency is the median of single-threaded LiteRT calls on this machine (per clip, or per
# 20 ms packet for stream formats). The clips are the test clips above; the report is written
# to `report.json` in the train_dir (`report_<folder>.json` with `test_dir` set).

# %%
report = evaluate.evaluate_train_dir(train_dir, test_dir=test_dir,
                                     exclude=test_exclude.split(","), formats=run.formats,
                                     stream_clips=run.stream_clips,
                                     latency_runs=run.latency_runs, progress=False)
plots.report_table(report)

# %%
plots.report_chart(report);

# %% [markdown]
# ### For a microcontroller
#
# TensorFlow Lite Micro runs the body with int8 MFCCs in (the device computes the MFCCs, as
# `README.md` in the folder below explains): the non-stream model and a streaming one fed one
# MFCC frame per 20 ms, each as a `.tflite` file and a C source/header pair to compile into
# firmware. With `tflite-micro` installed each is run in TFLM's own interpreter and its
# smallest arena measured.

# %%
micro_dir = train_dir / "micro"
micro_models = micro.export_micro(train_dir, micro_dir, data_dir=str(data_dir),
                                  check=micro.tflm_available())
Markdown(micro.summary_markdown(micro_models))

# %% [markdown]
# ## Streaming
#
# The same weights in a streaming model: it takes one 320-sample packet (20 ms) per call and
# keeps what it needs of the past in ring buffers. Converting builds the architecture in
# streaming mode and copies the weights by layer name. The proof that nothing changed: feed two
# test words packet by packet and compare with the non-stream model on the same audio.

# %%
stream_model = streaming.to_stream_external(model)
runner = streaming.StreamRunner(stream_model)
two_words = np.concatenate(test_audio[test_labels >= 2][:2])
figure, difference = plots.stream_vs_non_stream(model, runner, two_words, labels)
print(f"largest difference between streaming and non-stream logits: {difference:.1e}")

# %% [markdown]
# ### A long recording
#
# Held-out words placed at random over background noise — a few minutes of "always-on"
# listening. The streaming model runs over all of it; a keyword fires when its smoothed
# probability crosses the threshold. Every word not detected is a miss, every detection where
# no such word was spoken a false accept.
#
# The smoothing and the threshold are the detector's operating point, chosen once per model on
# a recording of *validation* speakers (20 minutes; 5 in the quick preset; the fewest misses at
# <= 10 false accepts per hour) and stored with it in `detection.json`; the committed models carry the one
# `benchmarks/streaming_detection.py` chose. The recording below is never used to choose it.

# %%
point = notebooks.operating_point(flags, run)
recording = make_long_recording(test_audio, test_labels, labels, noise=data_dir,
                                duration_s=run.recording_seconds, seed=0)
detection = detect.detect(train_dir / run.stream_format, recording, labels,
                          smoothing_ms=point["smoothing_ms"], threshold=point["threshold"])
summary = detection.summary()
Markdown(f"{run.stream_format} over {summary['duration_s'] / 60:.1f} min, smoothing "
         f"{point['smoothing_ms']:g} ms and threshold {point['threshold']:g}: "
         f"{summary['hits']} of {summary['keyword_events']} keywords found (miss rate "
         f"{100 * summary['miss_rate']:.0f}%), {summary['false_accepts']} false accepts "
         f"({summary['false_accepts_per_hour']:.0f} per hour).")

# %% tags=["figure:detection"]
detection.plot(max_seconds=60);

# %%
Audio(recording.audio[:10 * recording.sample_rate], rate=recording.sample_rate)

# %% [markdown]
# The threshold trades misses against false accepts: the same run scored at other thresholds.

# %%
plots.detection_tradeoff(detect.sweep_thresholds(detection), title=f"{MODEL}: {run.stream_format}");

# %% [markdown]
# ## Try it
#
# The int8 model (what a device would run) on a test clip; below, pick another clip, upload a
# recording of your own, or press **record** and say one of the words: the browser asks once
# for the microphone, records 2 s (the bar shows the level) and the model classifies the
# loudest second. A widget needs a running notebook; here is the one below after saying "yes"
# (a screenshot from the project's browser test):
#
# ![the classifier after recording "yes"](../docs/figures/microphone_record.png)

# %%
int8_model = train_dir / "tflite_int8" / "model.tflite"
first_word = int(np.flatnonzero(test_labels >= 2)[0])
predict = widgets.predictor(int8_model)
plots.probabilities(predict(test_audio[first_word]), labels, true_label=test_labels[first_word],
                    title=f"clip #{first_word}: prediction of the int8 model");

# %%
widgets.classifier(int8_model, test_audio, labels, test_labels);

# %% [markdown]
# ### Live
#
# Press **listen** and talk: the microphone streams 20 ms packets into the int8 streaming model,
# through the same stream runner as the long recording above. The chart rolls the keywords'
# smoothed probabilities over the last 6 s; the dashed line is the threshold (the operating
# point from above, stored in `train_dir/detection.json`), triangles mark detections, listed
# below the chart. **stop**
# frees the microphone. The browser test says "yes", then "no", through a fake microphone:
#
# ![live detection of "yes" and "no"](../docs/figures/microphone_live.png)
#
# Colab (not tested by the project): Chrome lets Colab's output frames use the microphone and
# the setup cell enables Colab's custom widget manager, which anywidget needs; every 128 ms of
# audio then travels over the network to Colab's kernel, so expect the chart to lag behind
# your voice more than in a local JupyterLab. Recording (above) is one message and is not
# affected.

# %%
widgets.live_detector(train_dir / run.stream_format, labels, train_dir=train_dir)

# %% [markdown]
# ## Next
#
# - `compare_30k.ipynb` puts the eight architectures side by side, beside the seed's published
#   numbers (it reads every `report.json` under `models_dir`).
# - Everything this notebook made is in `models_dir/{{name}}/`: `flags.json`, the weights,
#   `training_log.csv`, TensorBoard logs, one folder per TFLite format and `report.json`.
