# Template of notebooks/00_data_setup.ipynb: `python -m kwsnb.notebooks` renders it (see
# kwsnb/notebooks/). Edit this file, not the notebook.

# %% [markdown]
# # Keyword-spotting data: get it, look at it, listen to it
#
# {{colab_badge}}
#
# Every model in this project learns from folders in the **Speech Commands** layout (Warden,
# 2018, arXiv:1804.03209): one folder of one-second 16 kHz clips per word, a
# `_background_noise_` folder of long noise recordings, and lists of the clips held out for
# validation and testing. This notebook gets such a folder — the official data set, a copy you
# already have, or an offline text-to-speech set — and looks at what a model will see: how many
# examples each label has, what the clips sound like, their waveforms and MFCC features, and
# what training-time augmentation does to a clip.

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
# Three ways to get data (`data_source`):
#
# - `"speech_commands"`: the official Speech Commands V2 (2.3 GB, 105,829 clips of 35 words by
#   2,618 speakers, CC BY 4.0), downloaded from download.tensorflow.org, checked against its
#   published SHA-256 and extracted into `data_dir`. An interrupted download resumes.
#   `"speech_commands_v1"` gets V1.
# - a URL, a local `.tar.gz` / `.zip` archive, or an extracted folder (used in place, nothing
#   copied).
# - `"synthetic"`: the project's offline text-to-speech set — the 35 words spoken by 300
#   synthetic espeak-ng speakers with rooms, microphones and noise, made in a few minutes
#   without any download. Good for trying everything out; not a substitute for real speech.
#
# The same from a terminal: `python -m data_setup.speech_commands --out DIR [--source ...]` or
# `python -m data_setup.synthetic --out DIR`.

# %% tags=["parameters"]
data_source = "speech_commands"  # "speech_commands", "speech_commands_v1", "synthetic", or a URL / archive / folder
data_dir = "data/speech_commands_v2"  # where the data is (or is put)
wanted_words = None  # None: the seed's ten keywords (yes, no, up, down, left, right, on, off, stop, go)
quick = False  # True: a small synthetic set (16 words x 12 speakers) when data_source is "synthetic"

# %%
import numpy as np

from kwsnb import data, notebooks
from kwsnb.notebooks import plots, widgets

# %%
data_dir = notebooks.prepare_data(data_source, data_dir, quick=quick)

# %% [markdown]
# ## What is in the folder
#
# Clips per word folder, before any labelling:

# %%
folder = data.scan_folder(data_dir)
clips_per_word = {word: len(files) for word, files in folder.words.items()}
plots.label_counts({"clips": clips_per_word},
                   title=f"{folder.num_clips:,} clips in {len(folder.words)} word folders");

# %% [markdown]
# ## Labels and splits, as the seed makes them
#
# A keyword spotter does not learn all the words. The seed's task has twelve labels: ten
# keywords, `_unknown_` (any other word, so that the model can say "not a keyword") and
# `_silence_` (noise only, so that it can say "nothing"). Validation and testing hold out whole
# speakers: the split lists when the folder has them, else the seed's hash of the speaker id.
# Silence and unknown examples are added to each split at 10% of its keyword examples each.

# %%
dataset = data.SpeechCommands(data_dir, wanted_words=wanted_words or data.DEFAULT_WANTED_WORDS,
                              progress=False)
plots.label_counts(dataset.label_counts,
                   title=f"{len(dataset.labels)} labels, split by {dataset.split_by}");

# %% [markdown]
# ## Listen
#
# The first clip of each keyword's folder:

# %%
words = [label for label in dataset.labels if label in folder.words]
examples = {word: data.load_clip(folder.words[word][0]) for word in words}
widgets.audio_row(examples);

# %%
shown = words[:5]
plots.waveforms_and_mfccs([examples[word] for word in shown], shown);

# %% [markdown]
# Each column: the clip's waveform, and below it the MFCCs the models see (49 frames of 40 ms
# every 20 ms; 40 coefficients, the seed's default — some architectures keep 30). Words take
# half a second or so of the second; the rest is room noise.
#
# Browse any clip:

# %%
widgets.clip_browser(data_dir);

# %% [markdown]
# ### Your own voice
#
# Record yourself saying a word (**record**: 2 s from your microphone, the loudest second kept)
# and compare it with the data set's clip of that word: how loud is your room, how long the
# word, do the MFCCs look alike? A widget needs a running notebook; here is the one below after
# saying "yes" (a screenshot from the project's browser test, its fake microphone playing
# another speaker's clip):
#
# ![a recorded "yes" beside the data set's](../docs/figures/microphone_compare.png)

# %%
widgets.recording_vs_data(data_dir);

# %% [markdown]
# ## Background noise
#
# Mixed into training clips, and the only content of `_silence_` examples. Their loudness
# matters: real test-set silence is often louder than these recordings.

# %%
noise = data.BackgroundNoise.from_files(folder.noise_files)
noise_clips = {name: noise.samples[start:start + 16000]
               for name, start in zip(noise.names, noise.starts)}
plots.noise_levels(noise);

# %%
widgets.audio_row(noise_clips);

# %% [markdown]
# ## Augmentation
#
# Training never sees a clip twice the same way. The seed's augmentation, in order: stretch
# the clip in time by up to ±15% (`--resample 0.15`), shift it by up to ±100 ms
# (`--time_shift_ms 100`), and with probability 0.8 add a random slice of background noise at
# a random gain up to 0.1 (`--background_frequency`, `--background_volume`). Three augmented
# copies of the first keyword clip:

# %%
clip = examples[words[0]]
copies = plots.augmented_copies(dataset, clip, count=3, seed=0)
plots.waveforms_and_mfccs([clip, *copies], [f"{words[0]} (original)", "augmented #1",
                                            "augmented #2", "augmented #3"]);

# %%
widgets.audio_row({"original": clip, **{f"augmented #{i + 1}": c for i, c in enumerate(copies)}});

# %% [markdown]
# ## Next
#
# Train a model on this folder: open one of the architecture notebooks (`tc_resnet.ipynb`,
# `svdf.ipynb`, ...) with the same `data_source` and `data_dir`, then compare them all in
# `compare_30k.ipynb`.
