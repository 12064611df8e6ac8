"""kwsnb: tiny (~30k-parameter) streaming keyword-spotting models, from raw audio to int8 TFLite.

Stages, in the direction data flows (docs/architecture.md):
    kwsnb.data       Speech Commands files, splits, augmentation, tf.data
    kwsnb.features   MFCC front end as a Keras layer (TFLite builtins only)
    kwsnb.layers     streaming wrapper, SVDF and other stateful layers
    kwsnb.models     the eight architectures and ``build(name, **flags)``
    kwsnb.streaming  conversion between training, non-stream and streaming modes
    kwsnb.train      the seed's command lines and training recipe
    kwsnb.flatbuffer graph rewrites of a converted model that keep its outputs bit-identical
    kwsnb.convert    Keras -> TFLite conversion primitives
    kwsnb.quantize   one int8 calibration shared by every int8 format
    kwsnb.export     every TFLite format, written to folders
    kwsnb.runtime    reading and running .tflite files with LiteRT
    kwsnb.evaluate   accuracy, size and latency reports
    kwsnb.long_audio, kwsnb.detect   keyword detection over long recordings
    kwsnb.micro      features-in int8 models for TFLite Micro, as C arrays
    kwsnb.pipeline   train -> export -> evaluate (``python -m kwsnb.train``)
    kwsnb.plots, kwsnb.widgets, kwsnb.notebooks, kwsnb.demo   what notebooks show
    kwsnb.showcase   the notebooks run on the trained models, with outputs, in docs/notebooks/
"""
__version__ = "0.1.0"

import os as _os

# TensorFlow's C++ start-up chatter (CPU features, XLA service) is not for users; errors still show.
# Only effective when kwsnb is imported before TensorFlow; an explicit setting wins.
_os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
