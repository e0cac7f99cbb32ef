#!/usr/bin/python3
"""Plots of a `levattn eval` CSV: capture of heavy entries vs budget and relative output error vs
budget, one line per rule (leverage threshold sets as points at their mean size). Rows of a rule
that could not be computed (a non-empty failure column) are left out; an axis with no positive
value to show on a log scale is drawn linear and says so.

Usage: plot_eval.py RESULTS.csv OUT_DIR   (Debian: /usr/bin/python3 with python3-matplotlib)
Writes OUT_DIR/capture_<f>.png (one panel per ε) and OUT_DIR/error.png (one panel per f), each
written to a temporary file and renamed, so a failure leaves no partial PNG. `levattn eval --plots`
runs this script."""
import csv
import math
import os
import sys
import tempfile

try:
    import matplotlib
except ImportError:
    sys.exit(f"plot_eval: matplotlib is not installed for {sys.executable} (Debian: python3-matplotlib)")

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

STYLE = {"leverage": ("C0", "o"), "ridge": ("C1", "s"), "lewis": ("C9", "P"), "row-norm": ("C2", "^"),
         "random": ("C7", "v"), "sinks-window": ("C4", "D"), "h2o": ("C5", "x"), "oracle": ("k", "*")}


def num(text):
    return float(text) if text not in ("", "nan") else math.nan


def save(fig, path):
    fd, tmp = tempfile.mkstemp(prefix="." + os.path.basename(path), suffix=".png", dir=os.path.dirname(path) or ".")
    os.close(fd)
    try:
        fig.savefig(tmp, dpi=110, metadata={"Software": None})
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)
    plt.close(fig)


def file_name(f):
    return f.replace(":", "")


def log_scale(ax, axis, values, **kwargs):
    """A log scale on `axis` ("x" or "y") when some value is positive; otherwise linear, noted."""
    if any(v > 0 and math.isfinite(v) for v in values):
        (ax.set_xscale if axis == "x" else ax.set_yscale)("log", **kwargs)
    else:
        ax.text(0.5, 0.5, f"no positive {axis} value: linear scale", transform=ax.transAxes, ha="center",
                fontsize=8, color="0.4")


def legend(ax, **kwargs):
    if ax.get_legend_handles_labels()[0]:
        ax.legend(**kwargs)


def main(csv_path, out_dir):
    with open(csv_path, newline="") as fh:
        rows = [r for r in csv.DictReader(fh) if not r.get("failure")]
    if not rows:
        sys.exit("plot_eval: no computed rows in " + csv_path)
    os.makedirs(out_dir, exist_ok=True)
    eps = [c[len("capture_"):] for c in rows[0] if c.startswith("capture_")]
    functions = list(dict.fromkeys(r["f"] for r in rows))
    rules = list(dict.fromkeys(r["rule"] for r in rows))

    def series(f, rule, column):
        pts = [(int(r["budget"]), num(r[column])) for r in rows if r["f"] == f and r["rule"] == rule and r["budget"]]
        return sorted(pts)

    def thresholds(f, column):
        """Leverage threshold sets as (kept, value, label), sets of equal size and value merged."""
        merged = {}
        for r in rows:
            if r["f"] == f and r["threshold"]:
                merged.setdefault((num(r["kept_mean"]), num(r[column])), []).append(r["threshold"])
        return [(k, v, ",".join(t)) for (k, v), t in merged.items()]

    for f in functions:
        fig, axes = plt.subplots(1, len(eps), figsize=(4.2 * len(eps), 3.8), sharey=True, squeeze=False)
        for ax, e in zip(axes[0], eps):
            for rule in rules:
                pts = series(f, rule, "capture_" + e)
                if pts:
                    color, marker = STYLE.get(rule, (None, "o"))
                    ax.plot(*zip(*pts), marker=marker, color=color, label=rule, linewidth=1.4, markersize=5)
            for kept, cap, thr in thresholds(f, "capture_" + e):
                ax.scatter([kept], [cap], marker="o", facecolors="none", edgecolors="C0", s=70, zorder=5)
                ax.annotate(f"τ≥{thr}", (kept, cap), textcoords="offset points", xytext=(4, -12), fontsize=7, color="C0")
            log_scale(ax, "x", [x for line in ax.lines for x in line.get_xdata()] +
                      [k for k, _, _ in thresholds(f, "capture_" + e)], base=2)
            ax.set_title(f"{f}: entries A ≥ {e}")
            ax.set_xlabel("keys kept per head (budget)")
            ax.grid(True, alpha=0.3)
        axes[0][0].set_ylabel("capture (fraction of heavy entries kept)")
        axes[0][0].set_ylim(-0.03, 1.03)
        legend(axes[0][-1], fontsize=8, loc="lower right")
        fig.tight_layout()
        save(fig, os.path.join(out_dir, f"capture_{file_name(f)}.png"))

    fig, axes = plt.subplots(1, len(functions), figsize=(4.8 * len(functions), 3.8), squeeze=False)
    for ax, f in zip(axes[0], functions):
        for rule in rules:
            pts = [(k, e) for k, e in series(f, rule, "rel_error") if e > 0 and math.isfinite(e)]
            if pts:
                color, marker = STYLE.get(rule, (None, "o"))
                ax.plot(*zip(*pts), marker=marker, color=color, label=rule, linewidth=1.4, markersize=5)
        for kept, err, thr in thresholds(f, "rel_error"):
            if err > 0 and math.isfinite(err):
                ax.scatter([kept], [err], marker="o", facecolors="none", edgecolors="C0", s=70, zorder=5)
                ax.annotate(f"τ≥{thr}", (kept, err), textcoords="offset points", xytext=(4, 4), fontsize=7, color="C0")
        shown = [(x, y) for line in ax.lines for x, y in zip(line.get_xdata(), line.get_ydata())]
        shown += [(k, e) for k, e, _ in thresholds(f, "rel_error") if e > 0 and math.isfinite(e)]
        log_scale(ax, "x", [x for x, _ in shown], base=2)
        log_scale(ax, "y", [y for _, y in shown])
        ax.set_title(f"{f}: ‖O − Ô‖_F / ‖O‖_F")
        ax.set_xlabel("keys kept per head (budget)")
        ax.grid(True, which="both", alpha=0.3)
    axes[0][0].set_ylabel("relative output error")
    legend(axes[0][-1], fontsize=8)
    fig.tight_layout()
    save(fig, os.path.join(out_dir, "error.png"))


if __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    main(sys.argv[1], sys.argv[2])
