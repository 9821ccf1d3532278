"""JAX's bfloat16 log-softmax by batch size, with and without the gradient (docs/findings.md,
"A bfloat16 log_softmax gives different answers by batch size").

Label-at-z, z = 10, K = 10, bfloat16 (true loss log(1 + 9e^−10) = 4.0852e-4): the value every jax
method returns, eagerly and under jit, for each --batch-size, as
``stabench loss -b jax -d bfloat16 -e softmax --logits 10 --batch-size N [--no-grad]`` measures it.

    python benchmarks/findings_jax_batch.py
"""
import json
import time

from stabench import meta
from stabench.experiments import loss

BATCHES = (None, 1, 2048, 4095, 4096, 4097, 8192)


def values(batch: int | None, grad: bool) -> dict[str, float]:
    """{method (and method@jit): loss value} for label-at-z, z = 10; the tool reports a variant
    only where it differs from eager, so an absent @jit equals the eager value."""
    df = loss.run(backends=["jax"], experiments="softmax", dtypes=["bfloat16"], logits="10", grad=grad,
                  batch_size=batch)
    df = df[(df.quantity == "loss") & (df.case_kind == "label-at-z")]
    out = {}
    for r in df.itertuples():
        out[r.method] = float(r.value)
    for m in list(out):
        if "@" not in m:
            out.setdefault(m + "@jit", out[m])
    return dict(sorted(out.items()))


def main():
    t = time.perf_counter()
    table = {("grad" if g else "no-grad"): {str(b or "all"): values(b, g) for b in BATCHES}
             for g in (False, True)}
    cpu = meta.cpu_info()
    print(json.dumps({"cpu": cpu["model"], "cpu_vendor": cpu["vendor"], **loss_versions(),
                      "values": table, "seconds": round(time.perf_counter() - t, 1)}, indent=1))


def loss_versions() -> dict:
    import jax
    import optax
    return {"jax": jax.__version__, "optax": optax.__version__}


if __name__ == "__main__":
    main()
