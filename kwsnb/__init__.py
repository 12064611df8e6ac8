"""kwsnb: tiny (~30k-parameter) streaming keyword-spotting models, from raw audio to int8 TFLite.

Subpackages and modules:
    kwsnb.features   MFCC front end as a Keras layer (TFLite builtins only)
    kwsnb.data       Speech Commands indexing, splits, augmentation, tf.data
    kwsnb.layers     streaming wrapper, SVDF and other stateful layers
    kwsnb.models     the eight architectures and ``build(name, **flags)``
    kwsnb.streaming  conversion between training, non-stream and streaming modes
"""
__version__ = "0.1.0"
