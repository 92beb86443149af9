"""Plots: drawn without a display, each returns its figure."""

import numpy as np
import pytest

matplotlib = pytest.importorskip("matplotlib")
matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def test_plot_ranef(sleep):
    fig = sleep.plot_ranef()
    assert len(fig.axes) == 2
    ax = fig.axes[0]
    assert ax.get_title() == "Subject: (Intercept)"
    assert len(ax.get_yticklabels()) == 18
    plt.close(fig)
    with pytest.raises(ValueError, match="not a grouping factor"):
        sleep.plot_ranef(group="Batch")


def test_plot_residuals(sleep):
    fig = sleep.plot_residuals()
    assert len(fig.axes) == 3
    # the first panel holds one point per observation, at the fitted values
    offsets = fig.axes[0].collections[0].get_offsets()
    np.testing.assert_allclose(np.asarray(offsets)[:, 0], sleep.fitted())
    plt.close(fig)


def test_plot_trajectories(sleep):
    fig = sleep.plot_trajectories()
    ax = fig.axes[0]
    assert ax.get_xlabel() == "Days"
    assert len(ax.lines) == 2 * 18          # raw points and fitted line per subject
    plt.close(fig)
    fig = sleep.plot_trajectories(ncols=6, max_groups=12)
    assert sum(a.get_visible() for a in fig.axes) == 12
    plt.close(fig)
    with pytest.raises(ValueError, match="'Nights'"):
        sleep.plot_trajectories(x="Nights")
