"""The report's plots, read back as matplotlib objects: a panel per method group and case, at
most 8 series a panel, one colour and marker per method in every panel and file, both labels
(sigmoid) and every case kind (softmax) drawn, non-finite results as counted markers, training
curves a column per variant."""
import numpy as np
import pandas as pd
import pytest

from stabench import experiment, plots, report
from stabench.experiments import loss

PNG = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def numpy_rows():
    """Real numpy rows, float16 sweep (20 logits), both loss experiments, as the report holds them."""
    out = {}
    for exp in ("sigmoid", "softmax"):
        df = loss.run(experiments=exp, backends=["numpy"], dtypes=["float16"], logits="sweep", points=20)
        df.insert(df.columns.get_loc("case_kind"), "logit_set", "sweep")
        out[exp] = df
    return out


def _loss_rows(df):
    return df[df.quantity == "loss"]


def _series(ax):
    """{method: Line2D} of the data series of a panel (the reference and guides are not series)."""
    return {ln.get_gid()[len("series:"):]: ln for ln in ax.get_lines() if (ln.get_gid() or "").startswith("series:")}


def _edges(ax):
    """{(method, what): number of markers} of the non-finite markers of a panel."""
    out = {}
    for coll in ax.collections:
        gid = coll.get_gid() or ""
        if gid.startswith("edge:"):
            _, m, what = gid.split(":")
            out[(m, what)] = out.get((m, what), 0) + len(coll.get_offsets())
    return out


def _legend_texts(fig):
    return [t.get_text() for ax in fig.axes if ax.get_legend() for t in ax.get_legend().get_texts()]


def _synthetic(seed=0, dtype="float16"):
    """4 backends × many methods (with @variants) × 2 case kinds, some results nan, inf, 0."""
    rng = np.random.default_rng(seed)
    methods = {"numpy": ["naive", "naive@upcast-float32", "fused", "fused@upcast-float32"],
               "tensorflow": [f"{b}{v}" for b in ("keras-probs", "keras-probs-class", "model-probs", "keras-logits",
                                                   "keras-logits-class", "model-logits", "tf-nn")
                              for v in ("", "@graph")],
               "torch": [f"{b}{v}" for b in ("bce-probs", "bce-probs-class", "bce-logits", "bce-logits-class")
                         for v in ("", "@autocast")],
               "jax": [f"{b}{v}" for b in ("naive", "optax", "extra") for v in ("", "@jit", "@x64-off")]}
    z = np.concatenate([-np.logspace(4, -2, 15), np.logspace(-2, 4, 15)])
    parts = []
    for backend, ms in methods.items():
        for m in ms:
            for kind in ("label-at-z", "wrong-at-z"):
                ulp = rng.lognormal(0, 3, z.size)
                value = rng.lognormal(0, 2, z.size)
                status = np.full(z.size, "ok", dtype=object)
                if m.startswith("naive"):
                    status[:3], ulp[:3], value[:3] = "nan-result", np.nan, np.nan
                    status[-2:], ulp[-2:], value[-2:] = "overflow", np.inf, np.inf
                    value[10] = 0.0
                if m == "bce-probs@autocast" and kind == "wrong-at-z":  # a framework refusing the dtype
                    status[:], ulp[:], value[:] = "unsupported", np.nan, np.nan
                parts.append(pd.DataFrame({"backend": backend, "method": m, "dtype": dtype, "case_kind": kind,
                                           "label": 0.0, "quantity": "loss", "logit": z, "value": value,
                                           "reference": np.abs(z) + 1.0, "ulp_error": ulp, "status": status}))
    return pd.concat(parts, ignore_index=True)


def _check_panels(fig, rows):
    """Every panel: ≤ 8 series, no two alike (colour and line style); each method one colour
    and marker in every panel."""
    color, marker = {}, {}
    for ax in fig.axes:
        if not ax.get_title():
            continue
        series = _series(ax)
        assert 1 <= len(series) <= plots.MAX_SERIES, ax.get_title()
        looks = {(ln.get_color(), str(ln.get_linestyle())) for ln in series.values()}
        assert len(looks) == len(series), ax.get_title()
        for m, ln in series.items():
            assert color.setdefault(m, ln.get_color()) == ln.get_color(), m
            assert marker.setdefault(m, ln.get_marker()) == ln.get_marker(), m
    # every method of the rows is drawn
    assert set(color) == set(rows["method"])
    return color


def test_synthetic_4_backends_split_into_panels_of_at_most_8(tmp_path):
    rows = _synthetic()
    fig = plots.ulp_figure(rows, "t")
    color = _check_panels(fig, rows)
    titles = [ax.get_title() for ax in fig.axes if ax.get_title()]
    # tensorflow's 14 methods: 2 groups (8 + 6), jax's 9 in 2; each row has both case kinds
    assert sum(t.startswith("tensorflow (1/2)") for t in titles) == 2
    assert sum(t.startswith("jax (2/2)") for t in titles) == 2
    assert sum(t.endswith("wrong-at-z") for t in titles) == sum(t.endswith("label-at-z") for t in titles) == 6
    # numpy's and jax's "naive" are one colour; a variant shares its method's colour, not its style
    assert color["naive"] == color["naive@jit"] == color["naive@upcast-float32"]
    # the value plot: the same panels and colours, plus the reference in each
    vfig = plots.value_figure(rows, "t")
    assert _check_panels(vfig, rows) == color
    assert all(any(ln.get_gid() == "reference" for ln in ax.get_lines()) for ax in vfig.axes if ax.get_title())
    plots._plt().close(fig), plots._plt().close(vfig)


def test_non_finite_results_are_counted_markers():
    rows = _synthetic()
    fig = plots.ulp_figure(rows, "t")
    found = {}
    for ax in fig.axes:
        for key, n in _edges(ax).items():
            found[key] = found.get(key, 0) + n
    # naive*: 3 nan and 2 ±inf per case kind (2), each series its own markers ("naive" is numpy's and jax's)
    for m, backends in (("naive", 2), ("naive@jit", 1), ("naive@x64-off", 1), ("naive@upcast-float32", 1)):
        assert found[(m, "nan")] == backends * 2 * 3 and found[(m, "inf")] == backends * 2 * 2
    texts = _legend_texts(fig)
    assert "naive@jit: nan (3 in label-at-z, 3 in wrong-at-z)" in texts
    assert "naive@jit: ±inf (2 in label-at-z, 2 in wrong-at-z)" in texts
    # a row without an error in ulps for another reason is a marker too, named by its status
    assert found[("bce-probs@autocast", "other")] == 30
    assert "bce-probs@autocast: unsupported, no finite ulps (30 in wrong-at-z)" in texts
    vfig = plots.value_figure(rows, "t")
    zeros = sum(_edges(ax).get(("naive", "zero"), 0) for ax in vfig.axes)
    assert zeros == 2 * 2  # numpy's and jax's naive, one zero per case kind
    assert "naive: 0 (1 in label-at-z, 1 in wrong-at-z)" in _legend_texts(vfig)
    plots._plt().close(fig), plots._plt().close(vfig)


def test_legends_sit_outside_the_data():
    fig = plots.ulp_figure(_synthetic(), "t")
    fig.canvas.draw()
    r = fig.canvas.get_renderer()
    panels = [ax for ax in fig.axes if ax.get_title()]
    legends = [ax.get_legend() for ax in panels if ax.get_legend()]
    assert len(legends) == len({ax.get_subplotspec().rowspan.start for ax in panels})  # one per row
    for leg in legends:
        box = leg.get_window_extent(r)
        for ax in panels:
            assert not box.overlaps(ax.get_window_extent(r)), ax.get_title()
    plots._plt().close(fig)


def test_a_method_keeps_its_colour_in_every_dtype_file():
    """The report's styles come from the experiments' tables first: a dtype whose rows lack some
    methods (or add variants) colours the others alike."""
    static = [(b, m.name) for e in experiment.names() for b in ("numpy", "tensorflow", "torch", "jax")
              for m in experiment.get(e).backend_methods.get(b, ())]
    a = plots.method_styles(static + [("tensorflow", "tf-nn@graph"), ("jax", "naive@jit")])
    b = plots.method_styles(static + [("jax", "naive@x64-off")])
    for m in set(a) & set(b):
        assert (a[m].color, a[m].marker) == (b[m].color, b[m].marker), m
    assert a["tf-nn@graph"].color == a["tf-nn"].color and a["tf-nn@graph"].linestyle != a["tf-nn"].linestyle
    # two methods of one backend never share a colour
    for backend in ("numpy", "tensorflow", "torch", "jax"):
        names = [m for bk, m in static if bk == backend]
        assert len({a[m].color for m in names}) == len(set(names)), backend


def test_method_groups_keep_variants_with_their_method():
    ms = [f"{b}{v}" for b in "abcdefg" for v in ("", "@graph")]
    groups = plots.method_groups(ms)
    assert [len(g) for g in groups] == [8, 6]
    assert plots.method_groups(ms[:8]) == [ms[:8]]
    assert all(len(g) <= 8 for g in plots.method_groups([f"m{i}" for i in range(17)]))
    assert len(plots.method_groups([f"m{i}" for i in range(17)])) == 3


def test_sigmoid_plots_both_labels(numpy_rows):
    rows = _loss_rows(numpy_rows["sigmoid"])
    cases = experiment.get("sigmoid").plot_cases(rows)
    assert [t for t, _ in cases] == ["label y = 0", "label y = 1"]
    fig = plots.ulp_figure(rows, "t", cases=cases)
    _check_panels(fig, rows)
    assert [ax.get_title() for ax in fig.axes if ax.get_title()] == ["numpy · label y = 0", "numpy · label y = 1"]
    # every nan / overflow the rows hold is a marker
    drawn = {}
    for ax in fig.axes:
        for k, n in _edges(ax).items():
            drawn[k] = drawn.get(k, 0) + n
    st = rows.groupby(["method", "status"]).size()
    assert drawn.get(("naive", "nan"), 0) == st.get(("naive", "nan-result"), 0) > 0
    assert drawn.get(("naive", "inf"), 0) == st.get(("naive", "overflow"), 0) > 0
    plots._plt().close(fig)


def test_softmax_plots_every_case_kind(numpy_rows):
    rows = _loss_rows(numpy_rows["softmax"])
    cases = experiment.get("softmax").plot_cases(rows)
    assert [t for t, _ in cases] == ["label-at-z", "wrong-at-z", "all-equal"]
    fig = plots.value_figure(rows, "t", cases=cases)
    _check_panels(fig, rows)
    assert sum(1 for ax in fig.axes if ax.get_title()) == 3
    plots._plt().close(fig)


def test_report_plots_are_pngs_named_in_the_record(numpy_rows):
    out = report._plots(numpy_rows)
    names = [e["name"] for e, _ in out]
    assert names == ["sigmoid-float16-ulp.png", "sigmoid-float16-loss.png",
                     "softmax-float16-ulp.png", "softmax-float16-loss.png"]
    assert all(data.startswith(PNG) for _, data in out)
    assert {(e["experiment"], e["plot"]) for e, _ in out} == {(x, p) for x in ("sigmoid", "softmax")
                                                              for p in ("ulp", "loss")}


def test_training_curves_a_panel_per_variant():
    df = pd.DataFrame([{"variant": v, "policy": p, "epoch": e, "train_loss": 2.0 / e + i * 0.01,
                        "test_accuracy": 0.1 * e + i * 0.01}
                       for v in ("probs", "logits", "probs-detached") for i, p in
                       enumerate(("float32", "mixed_float16", "mixed_bfloat16")) for e in range(1, 5)])
    fig = plots.curves_figure(df, "t")
    panels = [ax for ax in fig.axes if ax.get_lines()]
    assert len(panels) == 6  # loss and accuracy, per variant
    assert [ax.get_title() for ax in panels if ax.get_title()] == [f"variant: {v}" for v in ("probs", "logits",
                                                                                              "probs-detached")]
    colors = {}
    for ax in panels:
        series = _series(ax)
        assert sorted(series) == sorted(("float32", "mixed_float16", "mixed_bfloat16"))
        for p, ln in series.items():
            assert colors.setdefault(p, ln.get_color()) == ln.get_color()
            assert len(ln.get_xdata()) == 4
    assert len(set(colors.values())) == 3 and len(fig.legends) == 1
    plots._plt().close(fig)
    # an epoch whose loss went nan is a marker, named in the legend
    df.loc[(df.variant == "probs") & (df.policy == "mixed_float16") & (df.epoch == 3), "train_loss"] = np.nan
    fig = plots.curves_figure(df, "t")
    assert sum(_edges(ax).get(("mixed_float16", "nan"), 0) for ax in fig.axes) == 1
    assert "x on the top edge: nan or ±inf that epoch" in [t.get_text() for t in fig.legends[0].get_texts()]
    plots._plt().close(fig)
    assert plots.curves_plot(df, "t").startswith(PNG)
