"""Run artifacts as matplotlib figures. Figures are built on the Agg canvas directly (no pyplot), so nothing
touches a GUI backend or pyplot's global figure registry inside jobs."""

from __future__ import annotations

import numpy as np
import pandas as pd
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from models.metrics import precision_recall_curve


def _figure(width: float, height: float) -> Figure:
    figure = Figure(figsize=(width, height), dpi=100)
    FigureCanvasAgg(figure)
    return figure


def pr_curve_figure(y_true, scores, flag_threshold: float, title: str) -> Figure:
    precision, recall, thresholds = precision_recall_curve(y_true, scores)
    figure = _figure(6, 4.5)
    ax = figure.add_subplot()
    ax.step(np.r_[0.0, recall], np.r_[precision[0], precision], where="post", label="model")
    ax.axhline(float(np.mean(y_true)), color="grey", linestyle=":", label="random (positive rate)")
    at_flag = thresholds >= flag_threshold
    if at_flag.any():
        i = int(np.nonzero(at_flag)[0][-1])
        ax.plot(recall[i], precision[i], "o", color="red", label="flag threshold (1% benign FPR)")
    ax.set(xlabel="recall", ylabel="precision", xlim=(0, 1.02), ylim=(0, 1.02), title=title)
    ax.legend(loc="lower left")
    figure.tight_layout()
    return figure


def feature_importance_table(booster, columns: list[str]) -> pd.DataFrame:
    """Gain, cover and split count for every model input (0 for features no tree used), by gain."""
    table = pd.DataFrame({"feature": columns})
    for kind in ("total_gain", "gain", "total_cover", "weight"):
        scores = booster.get_score(importance_type=kind)
        table[kind] = [float(scores.get(c, 0.0)) for c in columns]
    total = table["total_gain"].sum()
    table["gain_share"] = table["total_gain"] / total if total > 0 else 0.0
    return table.sort_values("total_gain", ascending=False, kind="stable").reset_index(drop=True)


def feature_importance_figure(table: pd.DataFrame, top: int = 25) -> Figure:
    shown = table.head(top).iloc[::-1]
    figure = _figure(7, max(3.0, 0.28 * len(shown) + 1))
    ax = figure.add_subplot()
    ax.barh(shown["feature"], shown["gain_share"])
    ax.set(xlabel="share of total gain", title=f"feature importance (top {len(shown)} by gain)")
    ax.tick_params(axis="y", labelsize=8)
    figure.tight_layout()
    return figure
