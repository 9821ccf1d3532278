"""The sum and mean experiments through the runner in every backend (float16, bfloat16, short rows):
each framework method's value is what a direct call of that framework function returns (nothing is
re-implemented), the gradients are the frameworks' own, and every method has its rows."""
import numpy as np
import pytest
from frames import pick

from stabench import dtypes
from stabench.experiments import sums


def _rows():
    """The row runner, imported by the tests that use it: importing it registers its tables, which
    tests/test_columns.py (collected before them) checks without expecting it."""
    from stabench.experiments import rows

    return rows

DTS = ("float16", "bfloat16")
BACKENDS = ("numpy", "torch", "tensorflow", "jax")


@pytest.fixture(scope="module")
def run():
    for mod in ("torch", "tensorflow", "jax"):
        pytest.importorskip(mod)
    rows = _rows()
    p = rows.plan(rows.Options(experiments=["sum", "mean"], dtypes=list(DTS), backends=list(BACKENDS), length=300,
                               points=2, max_length=2048, seed=3))
    df, _ = rows.run(p)
    return p, df


def _direct(backend, method, experiment, x, dt):
    """The framework function itself on the rows ``x`` (values of ``dt``), as a float64 array."""
    if backend == "torch":
        import torch

        t = torch.from_numpy(x).to(getattr(torch, dt))
        f = {("sum", "sum"): lambda: torch.sum(t, dim=1), ("sum", "cumsum"): lambda: torch.cumsum(t, dim=1)[:, -1],
             ("mean", "mean"): lambda: torch.mean(t, dim=1)}[(experiment, method)]
        return f().to(torch.float64).numpy()
    if backend == "tensorflow":
        import keras
        import tensorflow as tf

        t = tf.constant(x, dtype=getattr(tf, dt))
        f = {("sum", "reduce_sum"): lambda: tf.reduce_sum(t, axis=1),
             ("sum", "cumsum"): lambda: tf.math.cumsum(t, axis=1)[:, -1],
             ("sum", "keras.ops.sum"): lambda: keras.ops.sum(t, axis=1),
             ("mean", "reduce_mean"): lambda: tf.reduce_mean(t, axis=1),
             ("mean", "keras.ops.mean"): lambda: keras.ops.mean(t, axis=1)}[(experiment, method)]
        return tf.cast(f(), tf.float64).numpy()
    import jax.numpy as jnp

    t = jnp.asarray(dtypes.get(dt).cast(x))
    f = {("sum", "sum"): lambda: jnp.sum(t, axis=1), ("sum", "cumsum"): lambda: jnp.cumsum(t, axis=1)[:, -1],
         ("mean", "mean"): lambda: jnp.mean(t, axis=1)}[(experiment, method)]
    return np.asarray(f()).astype(np.float64)


@pytest.mark.parametrize("dt", DTS)
def test_framework_values_are_direct_calls(run, dt):
    p, df = run
    checked = 0
    for exp in ("sum", "mean"):
        for g in p.groups[(exp, dt)]:
            for backend in ("torch", "tensorflow", "jax"):
                for m in sums.SUM.backend_methods[backend] if exp == "sum" else sums.MEAN.backend_methods[backend]:
                    got = pick(df, experiment=exp, quantity="value", backend=backend, method=m.name, dtype=dt)
                    got = got[got["row"].isin(g.row)].sort_values("row")
                    want = _direct(backend, m.name, exp, g.x, dt)
                    assert np.array_equal(got["value"].to_numpy(), want, equal_nan=True), (exp, backend, m.name)
                    checked += 1
    assert checked == (7 + 4) * len(p.groups[("sum", dt)])  # 7 sum and 4 mean methods per group


def test_every_method_has_rows_and_exact_sum_gradients(run):
    p, df = run
    for exp, e in (("sum", sums.SUM), ("mean", sums.MEAN)):
        for b in BACKENDS:
            for m in e.backend_methods[b]:
                for dt in DTS:
                    v = pick(df, experiment=exp, backend=b, method=m.name, dtype=dt, quantity="value")
                    assert len(v) == sum(len(g.row) for g in p.groups[(exp, dt)]), (exp, b, m.name, dt)
    # the gradient of a sum is 1 in every framework (the cotangent passed through unchanged)
    g = pick(df, experiment="sum", quantity="grad")
    assert (g["status"] == "exact").all() and (g["value"] == 1.0).all()
    # torch.sum of 300 float16 ones is 300 (its float32 accumulator), as is numpy's pairwise np.sum
    ones = pick(df, experiment="sum", quantity="value", dtype="float16", case_kind="ones")
    assert (pick(ones, backend="torch", method="sum")["value"] == 300).all()
    assert (pick(ones, backend="numpy", method="numpy-sum")["value"] == 300).all()
    assert pick(df, case_kind="length-sweep")["length"].max() == 2048
