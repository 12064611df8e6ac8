"""kwsnb: tiny (~30k-parameter) streaming keyword-spotting models, from raw audio to int8 TFLite.

Subpackages, in the direction data flows (docs/architecture.md):
    kwsnb.data       Speech Commands files, splits, augmentation, tf.data, long recordings
    kwsnb.features   the MFCC front end as a Keras layer (TFLite builtins only)
    kwsnb.layers     streaming wrapper, SVDF, ModelBuilder and the blocks models share
    kwsnb.models     the eight architectures, ``build(name, **flags)``, the seed's table
    kwsnb.streaming  conversion between modes, and StreamRunner: the one stream runner
    kwsnb.train      the seed's command lines and training recipe (``python -m kwsnb.train``)
    kwsnb.tflite     conversion, quantization, the flatbuffer toolkit, export, the LiteRT runtime
    kwsnb.micro      features-in int8 models for TFLite Micro, as C arrays (``python -m kwsnb.micro``)
    kwsnb.evaluate   accuracy, size and latency reports; detection over long recordings
                     (``python -m kwsnb.evaluate``)
    kwsnb.notebooks  what the notebooks call and show, their rendering, sweeps and showcase
    kwsnb.pipeline   train -> export -> evaluate; kwsnb.demo the README's demo
"""
__version__ = "0.1.0"

import os as _os

# TensorFlow's C++ start-up chatter (CPU features, XLA service) is not for users; errors still show.
# Only effective when kwsnb is imported before TensorFlow; an explicit setting wins.
_os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
