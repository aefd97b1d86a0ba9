"""Reporting an ``EvalResult``: the Markdown tables and the accuracy-vs-threshold plot."""

from __future__ import annotations

from pathlib import Path

from hrpose_ros.evaluation.results import ADD_FRACTION, PROJ_THRESHOLD_PX, EvalResult, accuracy_curves

__all__ = ["format_tables", "plot_accuracy"]


def format_tables(result: EvalResult) -> str:
    """Markdown tables: per-object ADD(-S) and 2D projection accuracy, mean errors, and the model."""
    lines = [
        "| object | ADD(-S) % | 2D proj % | rot err [deg] | trans err [mm] | depth err [%] "
        "| detected / instances |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for o in result.objects:
        if not o.instances:
            continue
        name = f"{o.name}*" if o.symmetric else o.name
        lines.append(
            f"| {name} | {o.add_accuracy:.2f} | {o.proj_accuracy:.2f} | {o.mean_rot_deg:.2f} | "
            f"{1000 * o.mean_trans_m:.1f} | {o.median_depth_err_pct:.1f} | {o.detected} / {o.instances} |"
        )
    a = result.average
    lines.append(
        f"| **average** | **{a['add_accuracy']:.2f}** | **{a['proj_accuracy']:.2f}** | "
        f"{a['mean_rot_deg']:.2f} | {1000 * a['mean_trans_m']:.1f} | {a['median_depth_err_pct']:.1f} | |"
    )
    lines.append("")
    lines.append(
        f"(* ADD-S for symmetric objects; {result.images} images; ADD(-S) < {ADD_FRACTION:g} x diameter, "
        f"2D projection < {PROJ_THRESHOLD_PX:g} px; rot and trans err: means, depth err: median "
        "|z_est / z_gt - 1| over detected instances)"
    )
    lines.append(
        f"diagnostic: with every estimate moved along its ray to the true depth, ADD(-S) would be "
        f"{a['add_accuracy_true_depth']:.2f} %"
    )
    m = result.model
    if "params_m" in m:
        lines.append(
            f"model {m.get('variant')}: {m['params_m']:.2f}M parameters, {m['gflops']:.2f} GFLOPs at "
            f"{m['input_size'][0]}x{m['input_size'][1]} (FlopCounterMode, multiply-add = 2 FLOPs), "
            f"{100 * m.get('head_flops_share', float('nan')):.0f} % of them in fusion + regressor"
        )
    return "\n".join(lines)


def plot_accuracy(result: EvalResult, path: str | Path) -> Path:
    """PNG of accuracy vs threshold: ADD(-S) (fraction of diameter), 2D projection (px) and
    depth (percent of the true depth)."""
    import matplotlib  # noqa: PLC0415

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt  # noqa: PLC0415

    curves = accuracy_curves(result.instances, len(result.objects), [o.name for o in result.objects])
    fig, axes = plt.subplots(1, 3, figsize=(16, 4.2))
    for ax, key, xs, xlabel, mark in (
        (axes[0], "add", curves["add_fraction"], "ADD(-S) threshold / diameter", ADD_FRACTION),
        (axes[1], "proj", curves["proj_px"], "2D projection threshold [px]", PROJ_THRESHOLD_PX),
        (axes[2], "depth", curves["depth_pct"], "|depth error| threshold [% of the depth]", None),
    ):
        for name, obj in curves["objects"].items():
            ax.plot(xs, obj[key], lw=1, label=name)
        if f"mean_{key}" in curves:
            ax.plot(xs, curves[f"mean_{key}"], "k", lw=2.5, label="mean")
        if mark is not None:
            ax.axvline(mark, color="grey", ls="--", lw=1)
        ax.set(xlabel=xlabel, ylabel="accuracy [%]", ylim=(0, 100), xlim=(xs[0], xs[-1]))
        ax.grid(alpha=0.3)
    axes[1].legend(fontsize=7, loc="lower right")
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
