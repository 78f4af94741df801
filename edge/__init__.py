"""nemg-edge: what runs on the box.

Fixed-point Mel features, the TFLite interpreter wrapper, the stream pipeline, the event
log and the on-box model store. Depends on numpy, pyserial and a TFLite interpreter only;
never imports TensorFlow (a test enforces it).
"""

__version__ = "0.1.0"
