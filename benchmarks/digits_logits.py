"""Write the digits network's real logits: the rows of the log-sum-exp experiments' ``digits`` kind.

Runs :func:`stabench.experiments.train.heldout_logits`: the classic digits network (Dense(25, relu)
→ Dense(15, relu) → Dense(10), linear) trained as ``stabench train``'s ``logits`` variant under the
``float32`` Keras policy — seed 0 (``keras.utils.set_random_seed``, the stratified split's
``random_state`` and the batch order), TensorFlow's deterministic ops, Adam at 1e-3, batches of 32 —
for 100 epochs on scikit-learn's 8×8 digits (1,437 training images), then evaluates it on the 360
held-out images. 100 epochs, not ``train``'s default 40: the logits are then what a trained
classifier gives (values from about −33 to +22, a median top-two margin of 8.4, 129 rows with a
margin above 10; at 40 epochs the largest logit is 14 and only 9 rows have such a margin), and the
test accuracy has levelled off (95.6 %; 95.3 % at 40, 96.4 % at 200).

Writes (committed; shipped in the package, read by ``stabench.experiments.lse``):

- ``stabench/data/digits-logits.npy``: float32, (360, 10), row i the logits of test image i;
- ``stabench/data/digits-logits.json``: the metadata — seed, epochs, batch size, learning rate, the
  versions of TensorFlow, Keras, scikit-learn and numpy, the CPU, this command, the test labels
  (one string, character i the digit of image i),
  the accuracy, the value range and the file's SHA-256.

Made with TensorFlow 2.21.0, Keras 3.15.1, scikit-learn 1.9.1 on an AMD EPYC (2 cores), about 8 s
(TensorFlow's import included). The logits are deterministic for one machine and TensorFlow release; another CPU or
release may give other bits (``tests/test_digits_logits.py`` compares bit for bit only where the
versions and the CPU match the JSON).

    python benchmarks/digits_logits.py [--epochs 100] [--seed 0] [--out stabench/data]
"""
from __future__ import annotations

import argparse
import hashlib
import io
import json
import pathlib
import sys
import time

import numpy as np

ROOT = pathlib.Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # this checkout's stabench, not an installed one

from stabench import meta  # noqa: E402
from stabench.experiments import train  # noqa: E402

EPOCHS = 100
SEED = 0
NAME = "digits-logits"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--epochs", type=int, default=EPOCHS)
    ap.add_argument("--seed", type=int, default=SEED)
    ap.add_argument("--out", default=str(ROOT / "stabench" / "data"))
    args = ap.parse_args(argv)

    t = time.perf_counter()
    z = train.heldout_logits(epochs=args.epochs, seed=args.seed)
    seconds = time.perf_counter() - t
    assert z.dtype == np.float32 and z.ndim == 2 and z.shape[1] == train.CLASSES and np.isfinite(z).all()
    labels = train.load_data(args.seed).y_test

    import keras
    import sklearn
    import tensorflow as tf

    top2 = np.sort(z, axis=1)[:, -2:]
    margin = top2[:, 1] - top2[:, 0]
    buf = io.BytesIO()
    np.save(buf, z)
    cpu = meta.cpu_info()
    info = {
        "file": f"{NAME}.npy",
        "what": "logits of the digits network (stabench train's `logits` variant, float32 policy) on the "
                "held-out test images of scikit-learn's 8x8 digits; row i is test image i",
        "shape": list(z.shape),
        "dtype": str(z.dtype),
        "sha256": hashlib.sha256(buf.getvalue()).hexdigest(),
        "function": "stabench.experiments.train.heldout_logits",
        "seed": args.seed,
        "epochs": args.epochs,
        "batch_size": train.DEFAULT_BATCH_SIZE,
        "learning_rate": train.DEFAULT_LEARNING_RATE,
        "test_size": train.TEST_SIZE,
        "hidden_units": list(train.HIDDEN_UNITS),
        "test_accuracy": float(np.mean(np.argmax(z, axis=1) == labels)),
        "min": float(z.min()),
        "max": float(z.max()),
        "row_max_min": float(z.max(axis=1).min()),
        "margin_median": float(np.median(margin)),
        "margin_max": float(margin.max()),
        "labels": "".join(map(str, labels.tolist())),  # test image i's digit: character i
        "tensorflow": tf.__version__,
        "keras": keras.__version__,
        "sklearn": sklearn.__version__,
        "numpy": np.__version__,
        "python": sys.version.split()[0],
        "cpu": cpu["model"],
        "cpu_vendor": cpu["vendor"],
        "command": "python benchmarks/digits_logits.py"
                   + "".join(f" --{k} {v}" for k, v in (("epochs", args.epochs), ("seed", args.seed))
                             if v != {"epochs": EPOCHS, "seed": SEED}[k]),
        "seconds": round(seconds, 2),  # TensorFlow's import, building, tracing, training
    }
    out = pathlib.Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / f"{NAME}.npy").write_bytes(buf.getvalue())
    (out / f"{NAME}.json").write_text(json.dumps(info, indent=1) + "\n", encoding="utf-8")
    print(f"{out / NAME}.npy: {z.shape} {z.dtype}, values {z.min():.3f} … {z.max():.3f}, "
          f"accuracy {info['test_accuracy']:.4f}, {seconds:.1f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
