# Template of notebooks/compare_30k.ipynb: `python -m kwsnb.notebooks` renders it (see
# kwsnb/notebooks/). Edit this file, not the notebook.

# %% [markdown]
# # The eight ~30k-parameter models, side by side
#
# {{colab_badge}}
#
# Google Research's kws_streaming published eight keyword-spotting architectures of about
# 30,000 parameters each, trained on Speech Commands V2 for twelve labels. The architecture
# notebooks train each of them with the seed's command line and write a `report.json`:
# accuracy, size and latency of every TFLite format on the same test clips. This notebook reads
# every report under `models_dir` and sets them beside the published figures
# ({{seed_source}}).
#
# Read the two sets of numbers with care: the published accuracies are on the full Speech
# Commands V2 test split after 80,000 training steps; yours are on whatever data and steps your
# runs used (the reports say which). The published latencies were measured on a Pixel 4 phone,
# kwsnb's on this machine; compare models within one column, not across.

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

# %% tags=["parameters"]
models_dir = "models"  # every report.json below it is read (the architecture notebooks' models_dir)
report_name = "report.json"  # or report_<test folder>.json for runs scored with a test_dir

# %%
from IPython.display import Markdown

from kwsnb.notebooks import comparison

rows = comparison.comparison_rows(models_dir, report_name)
Markdown(f"Found {len(rows)} report(s) under `{models_dir}`: "
         + (", ".join(f"{row['model']} ({row['steps']} steps)" for row in rows) or "none yet — "
            "run the architecture notebooks first"))

# %% [markdown]
# ## The numbers
#
# Measured here: accuracy of the float TFLite model, of the seed's dynamic-range quantization
# and of full int8 (the MFCC front end kept float); int8 file size; latency per clip (float,
# int8) and per 20 ms packet of the float streaming model. Then the seed's published figures.

# %%
comparison.comparison_table(rows)

# %% [markdown]
# ## Accuracy against cost
#
# Each measured model is a filled dot; the seed's published figure for the same architecture
# is a hollow dot of the same colour (the seed published no MACs). Up and to the left is
# better.

# %% tags=["figure:comparison"]
comparison.comparison_charts(rows);

# %%
comparison.comparison_bars(rows);

# %% [markdown]
# ## What kwsnb changed so that all eight stream
#
# kws_streaming streams two of the eight (svdf and svdf_resnet). kwsnb streams all of them; the
# changes, from each model module's `CHANGES` (the architecture notebooks explain them and
# their cost):

# %%
comparison.changes_table()
