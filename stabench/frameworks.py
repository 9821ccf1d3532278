"""Quiet imports of heavy frameworks, shared by the tensorflow backend and `stabench train`.

TensorFlow writes C++ start-up lines to stderr before its logging is initialised, so
``TF_CPP_MIN_LOG_LEVEL`` does not reach them; they are sent to /dev/null during the import —
unless the user set ``TF_CPP_MIN_LOG_LEVEL`` below 3 to see them. Nothing here imports anything
until called.
"""
from __future__ import annotations

import os
import sys


def tensorflow_and_keras():
    """Import tensorflow and keras (on TensorFlow) without their start-up chatter on stderr."""
    if "tensorflow" in sys.modules and "keras" in sys.modules:
        return sys.modules["tensorflow"], sys.modules["keras"]
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    os.environ.setdefault("KERAS_BACKEND", "tensorflow")
    saved = None
    if os.environ["TF_CPP_MIN_LOG_LEVEL"] == "3":
        try:
            sys.stderr.flush()
            saved = os.dup(2)
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, 2)
            os.close(devnull)
        except OSError:  # no file descriptor 2 to redirect: import as is
            saved = None
    try:
        import tensorflow as tf_
        import keras as keras_
    finally:
        if saved is not None:
            os.dup2(saved, 2)
            os.close(saved)
    tf_.get_logger().setLevel("ERROR")  # retracing notices and the like
    try:
        from absl import logging as absl_logging

        absl_logging.set_verbosity(absl_logging.ERROR)
    except ImportError:  # absl ships with tensorflow; nothing to quiet without it
        pass
    return tf_, keras_


