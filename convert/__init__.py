"""nemg-edge workstation toolchain: corpus, training, quantization, evaluation, bundles.

tfmot needs Keras 2 models, and TensorFlow 2.21 ships Keras 3 as ``tf.keras`` unless
``TF_USE_LEGACY_KERAS=1`` is set *before TensorFlow is imported*. Every ``convert`` module
imports this package first, so the variable is set here, once, before anything else.
"""

import os

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
