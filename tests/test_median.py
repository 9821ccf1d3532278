"""median_ulp_bound is the same number in row and streaming runs (issue 11.4)."""
import math

import numpy as np

from stabench import stream
from stabench.experiments import loss


def test_bin_upper_edge():
    assert stream.bin_upper_edge(0.0) == 0.0
    assert stream.bin_upper_edge(math.inf) == math.inf and stream.bin_upper_edge(math.nan) == math.inf
    assert stream.bin_upper_edge(0.75) == 1.0 and stream.bin_upper_edge(1.0) == 2.0
    assert stream.bin_upper_edge(3.0) == 4.0


def test_row_and_streaming_runs_give_the_same_median_bound():
    # every finite float16 logit, once through the row path and once streamed (--range over all)
    opts = dict(experiments="sigmoid", dtypes=["float16"], backends=["numpy"], logits="exhaustive")
    rows = loss.summary(loss.run(**opts))
    _, streamed, _ = loss.run_streaming(loss.Options(**opts, value_range="-65504,65504"), workers=1)
    key = ["quantity", "method"]
    a = rows.sort_values(key).reset_index(drop=True)
    b = streamed.sort_values(key).reset_index(drop=True)
    assert list(a.cases) == list(b.cases)
    assert list(a.median_ulp_bound) == list(b.median_ulp_bound)
    assert list(a.max_ulp) == list(b.max_ulp)
    # the bound holds the exact median of the row path; the streamed exact median is not known
    assert (a.median_ulp <= a.median_ulp_bound).all() and b.median_ulp.isna().all()
    assert np.isfinite(a.median_ulp_bound).any()


def test_bound_is_at_least_the_median_for_an_even_count():
    import pandas as pd

    # two cases, 0.75 and 3.0 ulps: median 1.875; the lower middle's bin ends at 1, the upper's at 4
    df = pd.DataFrame({"experiment": "sigmoid", "quantity": "loss", "backend": "numpy", "method": "m",
                       "form": "fused", "dtype": "float32", "status": ["ok", "ok"],
                       "ulp_error": [0.75, 3.0], "logit": [1.0, 2.0], "label": [0.0, 0.0]})
    s = loss.summary(df).iloc[0]
    assert s.median_ulp == 1.875 and s.median_ulp_bound == 4.0
