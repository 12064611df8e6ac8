"""Accuracy, size and latency of every exported format; ``report.json`` and a text summary.

Command line::

    python -m kwsnb.evaluate TRAIN_DIR [--test_dir DIR] [--exclude go,on,off] [--json]
                                       [--formats keras,tflite_float,...] [--stream_clips N]
                                       [--reexport]

Without ``--test_dir`` the model is scored on the testing split of its own data set
(``flags.json``'s ``data_dir``) and the report goes to ``TRAIN_DIR/report.json``; with it, on a
folder in the official test-set layout (``_silence_/``, ``_unknown_/``, one folder per word) and
the report goes to ``TRAIN_DIR/report_<folder name>.json``. A ``.txt`` summary is written next to
each. Missing formats are exported first (into ``TRAIN_DIR/<format>/``, see ``kwsnb.tflite.export``), as
are formats older than the best weights.

What is measured:

* **accuracy** - share of clips whose argmax matches the label. Non-stream TFLite models run one
  clip per call (batch 1), as the seed's ``test.py`` does. ``tflite_features_int8`` gets its
  MFCCs from the model's float front end, quantized with the model's input scale and zero point.
* **stream formats** - the seed's ``reset1`` protocol: states zeroed per clip, all 50 packets
  of the clip fed (20 ms each), the prediction read after the last packet. The first frame is
  then half zeros (the audio ring buffer starts empty): models with valid padding never see it,
  causal ones (svdf_resnet) see it where the non-stream model sees zero padding, so their
  agreement can be slightly below 100%. ``prime_audio_state=True`` starts external-state models
  with the clip's first packet in the audio buffer instead (the stream then sees exactly the
  non-stream frames). ``agreement`` is the share of clips whose stream prediction equals the
  non-stream model's of the same precision (``agreement_with``); external-state formats also
  report ``agreement_primed``, the same measure on primed streams. Stream formats run on
  ``stream_clips`` clips drawn at random (every clip when None), recorded as ``clips``.
* **size_bytes** - the .tflite file; for ``keras`` the float32 weights.
* **latency_ms** - median of ``latency_runs`` single-threaded ``invoke()`` calls of LiteRT's
  interpreter after a warm-up, on a real clip (one packet for stream formats: per-packet
  latency). Not measured for ``keras`` (TensorFlow's eager overhead, not the model, would
  dominate; ``null`` in the report).
"""
from kwsnb.evaluate.formats import (ALL_FORMATS, DEFAULT_STREAM_CLIPS, KERAS, STREAM_FAMILY,
                                    TFLM_FORMATS, EvaluationError, evaluate_formats,
                                    keras_weight_bytes, stream_subset)
from kwsnb.evaluate.report import (REPORT_NAME, build_report, evaluate_train_dir, failures,
                                   format_report, report_paths)

__all__ = ["ALL_FORMATS", "DEFAULT_STREAM_CLIPS", "KERAS", "REPORT_NAME", "STREAM_FAMILY",
           "TFLM_FORMATS", "EvaluationError", "build_report", "evaluate_formats",
           "evaluate_train_dir", "failures", "format_report", "keras_weight_bytes",
           "report_paths", "stream_subset"]
