import os

# Quiet TensorFlow's C++ start-up logging in tests that import it.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
