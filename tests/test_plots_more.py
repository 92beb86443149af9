"""Every plot, for an LMM and a GLMM, saved to a file: a real image (size, not blank), drawn
into a caller's Axes where asked, with the fixes of issue 18 (level orders, labels, colours)."""

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import mixedmodels as mm

matplotlib = pytest.importorskip("matplotlib")
matplotlib.use("Agg")
import matplotlib.image as mpimg  # noqa: E402
import matplotlib.pyplot as plt  # noqa: E402


@pytest.fixture(scope="module")
def cbpp():
    return mm.glmer("cbind(incidence, size - incidence) ~ period + (1 | herd)", mm.load_dataset("cbpp"),
                    family="binomial")


def _plots(model, x: str):
    out = {
        "ranef": lambda: model.plot_ranef(),
        "residuals": lambda: model.plot_residuals(),
        "trajectories": lambda: model.plot_trajectories(x=x),
        "ranef_qq": lambda: model.plot_ranef_qq(),
        "forest": lambda: model.plot_forest(intercept=True),
        "residuals_by_group": lambda: model.plot_residuals_by_group(),
        "effects": lambda: model.plot_effects(x),
        "profile": lambda: model.plot_profile(which=[model.fixef.index[1]], n_points=5),
        "simulated_residuals": lambda: mm.simulate_residuals(model, n_sim=60, seed=1).plot(),
        "all_fit": lambda: mm.plot_all_fit(mm.all_fit(model, optimizers=("bobyqa", "nelder_mead"))),
    }
    return out


@pytest.mark.parametrize("which", ["lmm", "glmm"])
def test_every_plot_saves_a_real_image(which, sleep, cbpp, tmp_path):
    model, x = (sleep, "Days") if which == "lmm" else (cbpp, "period")
    for name, draw in _plots(model, x).items():
        fig = draw()
        assert isinstance(fig, matplotlib.figure.Figure), name
        w, h = fig.get_size_inches()
        assert 2.0 <= w <= 16.0 and 2.0 <= h <= 10.0, (name, w, h)
        path = tmp_path / f"{which}_{name}.png"
        fig.savefig(path, dpi=50)
        plt.close(fig)
        assert path.stat().st_size > 5000, name
        img = mpimg.imread(path)[..., :3]
        assert img.std() > 0.05, name                  # not a blank canvas
        assert (img.mean(axis=2) < 0.5).mean() > 0.002, name   # something dark was drawn


def test_compare_approaches_plot(tmp_path):
    res = mm.compare_approaches("Reaction ~ Days + (1 | Subject)", mm.load_dataset("sleepstudy"))
    fig = res.plot()
    colours = []
    for ax in fig.axes:
        assert ax.get_xlabel().startswith("estimate")
        # errorbar containers hold each approach's marker: its colour is its position's
        colours.append({c.lines[0].get_ydata()[0]: c.lines[0].get_color() for c in ax.containers})
    for pos in set(colours[0]) & set(colours[1]):
        assert colours[0][pos] == colours[1][pos]
    fig.savefig(tmp_path / "compare.png", dpi=50)
    plt.close(fig)


def test_ax_is_used(sleep):
    fig, axes = plt.subplots(1, 2)
    assert sleep.plot_forest(ax=axes[0]) is fig
    assert len(axes[0].lines) > 0
    assert sleep.plot_ranef(ax=axes) is fig
    fig2, grid = plt.subplots(2, 2)                      # a 2-d array of Axes is taken row by row
    assert sleep.plot_ranef_qq(ax=grid[0]) is fig2
    assert len(grid[0, 1].lines) > 0
    plt.close(fig2)
    with pytest.raises(ValueError, match="2 panel"):
        sleep.plot_ranef(ax=axes[0])
    with pytest.raises(ValueError, match="ncols"):
        sleep.plot_trajectories(ncols=3, ax=axes[0])
    plt.close(fig)


def test_caterpillar_one_order_capped_height_thinned_labels():
    gpa = mm.load_dataset("gpa")
    m = mm.lmer("gpa ~ occasion + (1 + occasion | student)", gpa)
    fig = m.plot_ranef(level=0.9)
    assert fig.get_size_inches()[1] <= 10.0            # 200 students, not a 37-inch figure
    a, b = fig.axes
    la = [t.get_text() for t in a.get_yticklabels()]
    lb = [t.get_text() for t in b.get_yticklabels()]
    assert la == lb and 0 < len(la) <= 45               # one order in both panels, thinned
    assert "90%" in a.get_xlabel()
    # the order is that of the intercepts' conditional modes
    table = mm.ranef_table(m)
    icpt = table[table["term"] == "(Intercept)"].sort_values("condval", kind="stable")["grp"].astype(str).tolist()
    assert la == icpt[::int(np.ceil(200 / 45))][:len(la)]
    plt.close(fig)


def test_trajectories_categories_subsets_numeric_groups(cbpp, sleep):
    fig = cbpp.plot_trajectories(x="period", max_groups=5)
    ax = fig.axes[0]
    assert [t.get_text() for t in ax.get_xticklabels()] == ["1", "2", "3", "4"]
    assert "first 5 of 15" in ax.get_title()
    # the first groups drawn are herds 1..5 in numeric order (not 1, 10, 11, 12, 13)
    first_x = [line.get_xdata() for line in ax.lines[::2]]
    assert len(first_x) == 5
    data = cbpp.design.frame
    herds = [str(h) for h in range(1, 6)]
    for xs, herd in zip(first_x, herds):
        assert len(xs) == int((data["herd"].astype(str) == herd).sum())
    plt.close(fig)
    assert mm.presentation.plots.level_order(["1", "10", "2"]) == ["1", "2", "10"]
    fig = sleep.plot_trajectories()
    assert "first" not in fig.axes[0].get_title()       # all 18 subjects: no subset note
    plt.close(fig)


def test_effects_plot_is_the_emmeans_grid(sleep, cbpp):
    fig = sleep.plot_effects("Days", n_points=5)
    line = fig.axes[0].lines[0]
    grid = np.linspace(0, 9, 5)
    np.testing.assert_allclose(line.get_xdata(), grid)
    np.testing.assert_allclose(line.get_ydata(), sleep.fixef.iloc[0] + sleep.fixef.iloc[1] * grid)
    plt.close(fig)
    fig = cbpp.plot_effects("period")
    pts = fig.axes[0].lines[0].get_ydata()
    emm = mm.emmeans(cbpp, "period", type="response").to_frame()["prob"].to_numpy()
    np.testing.assert_allclose(pts, emm)
    assert "probability" in fig.axes[0].get_ylabel()
    plt.close(fig)
    with pytest.raises(ValueError, match="not among the model's variables"):
        sleep.plot_effects("Nights")


def test_profile_zeta_meets_the_profile_interval(sleep):
    # ζ crosses ±1.96 where the profile confidence interval ends (lme4's confint(profile))
    from mixedmodels.postestimation.profile_zeta import profile_zeta

    z = profile_zeta(sleep, which=["Days"], n_points=9, width=2.4)
    ci = sleep.confint(method="profile").loc["Days"]
    se = sleep.coef_table().loc["Days", "Std. Error"]
    lo = np.interp(-1.959964, z["zeta"], z["value"])
    hi = np.interp(1.959964, z["zeta"], z["value"])
    assert abs(lo - ci["lower"]) < 0.02 * se and abs(hi - ci["upper"]) < 0.02 * se
    assert np.all(np.diff(z["zeta"]) > 0)
    with pytest.raises(ValueError, match="not parameters of the model"):
        profile_zeta(sleep, which=["days"])


ZETA = json.loads((Path(__file__).resolve().parent / "reference" / "profile_zeta_reference.json").read_text())


@pytest.mark.parametrize("case", ["sleepstudy", "dyestuff"])
def test_variance_zeta_equals_lme4_profile(case):
    """ζ of every sd, cor and σ at lme4's own profile points equals lme4's ``profile()`` ζ
    (make_profile_zeta_reference.R); the fixed effects' ζ too."""
    from mixedmodels.postestimation.profile import variance_zeta
    from mixedmodels.postestimation.profile_zeta import profile_zeta

    ref = ZETA[case]
    data = mm.load_dataset("sleepstudy" if case == "sleepstudy" else "Dyestuff")
    m = mm.lmer(ref["formula"], data, reml=ref["reml"])
    for name, pts in ref["profile"].items():
        values, zeta = np.array(pts["value"]), np.array(pts["zeta"])
        if name in m.fixef.index:
            continue
        inside = np.abs(values) < 1 - 1e-9 if name.startswith("cor_") else values > 0
        ours, ref_z = variance_zeta(m, name, values[inside]), zeta[inside]
        # equal where intervals are read (|ζ| < 4); beyond, an equal or lower deviance (at
        # sleepstudy's sd = 1.0 lme4's inner fit stops at cor = 1 with ζ = -4.59, ours -4.53)
        near = np.abs(ref_z) < 4
        np.testing.assert_allclose(ours[near], ref_z[near], atol=2e-3, err_msg=name)
        assert np.all(np.abs(ours) <= np.abs(ref_z) + 2e-3), name
    z = profile_zeta(m, n_points=5, width=2.0)   # default: every parameter, variance ones first
    assert list(dict.fromkeys(z["parameter"])) == list(ref["profile"])
    assert z.groupby("parameter")["zeta"].apply(lambda v: bool(np.all(np.diff(v) > 0))).all()


def test_residuals_by_group_orders_by_median(sleep):
    fig = sleep.plot_residuals_by_group()
    labels = [t.get_text() for t in fig.axes[0].get_yticklabels()]
    resid = pd.Series(sleep.residuals(scaled=True), index=sleep.design.frame.index)
    med = resid.groupby(sleep.design.frame["Subject"].astype(str)).median().sort_values(kind="stable")
    assert labels == list(med.index)
    plt.close(fig)
