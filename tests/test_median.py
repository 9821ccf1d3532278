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
