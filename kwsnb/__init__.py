"""kwsnb: tiny (~30k-parameter) streaming keyword-spotting models, from raw audio to int8 TFLite.

Subpackages and modules:
    kwsnb.features   MFCC front end as a Keras layer (TFLite builtins only)
    kwsnb.data       Speech Commands indexing, splits, augmentation, tf.data
    kwsnb.layers     streaming wrapper, SVDF and other stateful layers
    kwsnb.models     the eight architectures and ``build(name, **flags)``
    kwsnb.streaming  conversion between training, non-stream and streaming modes
"""
__version__ = "0.1.0"

import os as _os

# TensorFlow's C++ start-up chatter (CPU features, XLA service) is not for users; errors still show.
# Only effective when kwsnb is imported before TensorFlow; an explicit setting wins.
_os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
