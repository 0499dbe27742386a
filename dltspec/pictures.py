"""Pictures of runs: learning curves (``dltspec plot``) and first-layer filters (``dltspec filters``).

Both read only what a run directory holds (``metrics.jsonl``, ``summary.json``, parameter
files), so any picture can be drawn again later, as the tutorial advises. Matplotlib draws
headless (the Agg backend); Pillow writes the filter tiles pixel for pixel.
"""
from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np

from dltspec.diagnostics import DltspecError
from dltspec.files import write_atomic
from dltspec.training.rundir import RunDir


class PictureError(DltspecError):
    """A picture that cannot be drawn (nothing to draw, a missing extra)."""


def scale_to_unit_interval(tile: np.ndarray, eps: float = 1e-8) -> np.ndarray:
    """The tutorial's ``scale_to_unit_interval``: ``tile`` shifted and scaled to [0, 1]."""
    tile = tile.astype(np.float64) - tile.min()
    return tile / (tile.max() + eps)


def tile_raster_images(tiles: np.ndarray, tile_shape: tuple[int, int], spacing: int = 1) -> np.ndarray:
    """The tutorial's ``tile_raster_images``: each of ``tiles`` (n, h, w) scaled to [0, 1] on its own and
    laid out in a grid of ``tile_shape`` (rows, columns) with ``spacing`` black pixels between; uint8."""
    n, h, w = tiles.shape
    rows, cols = tile_shape
    out = np.zeros((rows * (h + spacing) - spacing, cols * (w + spacing) - spacing), dtype=np.uint8)
    for k in range(min(n, rows * cols)):
        r, c = divmod(k, cols)
        out[r * (h + spacing):r * (h + spacing) + h, c * (w + spacing):c * (w + spacing) + w] = \
            np.round(scale_to_unit_interval(tiles[k]) * 255).astype(np.uint8)
    return out


def grid_shape(n: int) -> tuple[int, int]:
    cols = int(np.ceil(np.sqrt(n)))
    return int(np.ceil(n / cols)), cols


def first_layer_tiles(params: dict[str, np.ndarray], image_shape: tuple[int, int, int],
                      name: str | None = None) -> tuple[str, np.ndarray]:
    """``(name, tiles (n, h, w))``: the first layer's filters, ``params[name]`` (default: the first
    weight of ``params``, which are in layer order). A convolution's kernels (first input channel);
    a dense layer's columns as images of the input's shape."""
    if name is None:
        name = next((key for key, value in params.items() if np.ndim(value) >= 2), None)
    if name is None or name not in params:
        raise PictureError(f"no first-layer weights among the parameters ({', '.join(params)})")
    W = params[name]
    if W.ndim == 4:
        return name, W[:, 0]
    channels, h, w = image_shape
    if W.shape[0] != h * w * channels:
        raise PictureError(f"{name} takes {W.shape[0]} inputs, not images of {h}x{w}")
    return name, W.T.reshape(W.shape[1], channels, h, w)[:, 0]


def png_bytes(pixels: np.ndarray, zoom: int) -> bytes:
    try:
        from PIL import Image
    except ImportError:
        raise PictureError("drawing filters needs Pillow: pip install 'dltspec[plot]'") from None
    image = Image.fromarray(pixels.repeat(zoom, axis=0).repeat(zoom, axis=1), mode="L")
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def filters_png(params: dict[str, np.ndarray], image_shape: tuple[int, int, int], out: Path,
                max_tiles: int = 400, name: str | None = None) -> tuple[str, int]:
    """Write the first layer's filters (``params[name]``) as a PNG grid of tiles; return the layer's name
    and the tile count."""
    name, tiles = first_layer_tiles(params, image_shape, name)
    tiles = tiles[:max_tiles]
    pixels = tile_raster_images(tiles, grid_shape(len(tiles)))
    zoom = max(1, 240 // max(pixels.shape))  # small kernels (5x5, 8x8) are made visible
    write_atomic(out, png_bytes(pixels, zoom), mode=0o644)
    return name, len(tiles)


def pretrain_png(run: RunDir, out: Path) -> None:
    """A pre-training run's cost per epoch (``pretrain.jsonl``), one curve per pre-trained layer, each on its
    own axes (their costs have different scales: a layer's input width sets them)."""
    records = run.pretrain_records()
    if not records:
        raise PictureError(f"{run.path} has no pre-training records yet (no pre-training epoch has ended)")
    plt = pyplot()
    layers = list(dict.fromkeys(r["layer"] for r in records))
    fig, axes = plt.subplots(1, len(layers), figsize=(4 * len(layers), 3.5), constrained_layout=True, squeeze=False)
    for ax, layer in zip(axes[0], layers):
        mine = [r for r in records if r["layer"] == layer]
        ax.plot([r["epoch"] for r in mine], [r["cost"] for r in mine], marker=".", color="C0")
        ax.set_title(f"{layer} ({mine[0]['kind']})")
        ax.set_xlabel("pre-training epoch")
        ax.grid(True, alpha=0.3)
    axes[0][0].set_ylabel("mean cost (the pre-training's monitor)")
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=100)
    plt.close(fig)
    write_atomic(out, buffer.getvalue(), mode=0o644)


def samples_png(samples: np.ndarray, image_shape: tuple[int, int, int], out: Path) -> None:
    """Gibbs samples ``(n_samples, n_chains, n_visible)`` as the RBM tutorial draws them: a row per sample,
    a column per chain, each tile the visible means as an image of the input's shape."""
    n_samples, n_chains, n_visible = samples.shape
    channels, h, w = image_shape
    if n_visible != channels * h * w:
        raise PictureError(f"the samples have {n_visible} values, not images of {h}x{w}")
    tiles = samples.reshape(n_samples * n_chains, channels, h, w)[:, 0]
    pixels = tile_raster_images(tiles, (n_samples, n_chains))
    write_atomic(out, png_bytes(pixels, max(1, 480 // max(pixels.shape))), mode=0o644)


def pyplot():
    try:
        import matplotlib
    except ImportError:
        raise PictureError("plots need matplotlib: pip install 'dltspec[plot]'") from None
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def scheduled_rate(records: list[dict]) -> bool:
    """Whether a run's learning rate (or momentum) changed: a schedule, worth a panel of its own."""
    return any(len({r.get(key) for r in records}) > 1 for key in ("learning_rate", "momentum"))


def curves_png(runs: list[RunDir], out: Path) -> None:
    """Training cost, validation and test error against iterations, one colour per run; the best
    validation point marked with a star and where the run stopped with a dotted line; below them,
    when a run's rate changed (a schedule), its learning rate (and momentum) at each validation point."""
    plt = pyplot()
    all_records = [run.metrics() for run in runs]
    for run, records in zip(runs, all_records):
        if not records:
            raise PictureError(f"{run.path} has no metrics yet (no validation point was reached)")
    scheduled = any(scheduled_rate(records) for records in all_records)
    fig, axes = plt.subplots(3 if scheduled else 2, 1, sharex=True, figsize=(8, 9.5 if scheduled else 7),
                             constrained_layout=True)
    cost_ax, error_ax = axes[0], axes[1]
    for k, (run, records) in enumerate(zip(runs, all_records)):
        colour = f"C{k}"
        label = run.path.name
        it = [r["iteration"] for r in records]
        cost_ax.plot(it, [r["mean_cost"] for r in records], color=colour, label=label)
        error_ax.plot(it, [100 * r["validation_error"] for r in records], color=colour, label=f"{label} validation")
        tested = [r for r in records if r["test_error"] is not None]
        error_ax.plot([r["iteration"] for r in tested], [100 * r["test_error"] for r in tested], color=colour,
                      linestyle="--", marker=".", label=f"{label} test (at new bests)")
        best = min(records, key=lambda r: (r["validation_error"], r["iteration"]))
        error_ax.plot([best["iteration"]], [100 * best["validation_error"]], marker="*", markersize=14,
                      color=colour, linestyle="none", label=f"{label} best {100 * best['validation_error']:.2f} %")
        summary = run.summary()  # none yet, or damaged: the curves without the stop
        if summary.get("iterations"):
            for ax in (cost_ax, error_ax):
                ax.axvline(summary["iterations"], color=colour, linestyle=":", linewidth=1)
            error_ax.annotate(f"stopped ({summary.get('stopped_by') or summary.get('status')})",
                              (summary["iterations"], error_ax.get_ylim()[1]), color=colour, fontsize=8,
                              rotation=90, va="top", ha="right")
        if scheduled:
            rate_ax = axes[2]
            rate_ax.step(it, [r.get("learning_rate") for r in records], where="post", color=colour,
                         label=f"{run.path.name} learning rate")
            if any("momentum" in r for r in records) and len({r.get("momentum") for r in records}) > 1:
                twin = rate_ax.twinx()
                twin.step(it, [r.get("momentum") for r in records], where="post", color=colour, linestyle="--",
                          label=f"{run.path.name} momentum")
                twin.set_ylabel("momentum")
    if scheduled:
        axes[2].set_ylabel("learning rate (from here on)")
    cost_ax.set_ylabel("mean training cost")
    cost_ax.set_title("learning curves" if len(runs) > 1 else f"learning curves: {runs[0].path.name}")
    error_ax.set_ylabel("error (%)")
    axes[-1].set_xlabel("iteration (minibatches trained)")
    for ax in axes:
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize=7)
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=100)
    plt.close(fig)
    write_atomic(out, buffer.getvalue(), mode=0o644)


def numeric(values: list) -> bool:
    return all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values)


def sweep_png(rows: list[dict], keys: list[str], out: Path) -> None:
    """A sweep's best validation error against each swept value, one panel per key: numbers on a
    number axis (logarithmic when they span a factor of 10 or more), anything else one tick per
    value. Variants not finished are left out; the best is marked with a star."""
    plt = pyplot()
    done = [r for r in rows if r.get("status") == "finished" and r.get("best_validation_error") is not None]
    if not done:
        raise PictureError("no variant of this sweep has finished yet: nothing to draw")
    if not keys:
        raise PictureError("this sweep varies nothing: nothing to draw against")
    best = min(done, key=lambda r: r["best_validation_error"])
    fig, axes = plt.subplots(1, len(keys), figsize=(4.2 * len(keys) + 0.8, 4.2), squeeze=False,
                             constrained_layout=True)
    for ax, key in zip(axes[0], keys):
        values = [r["values"].get(key) for r in done]
        errors = [100 * r["best_validation_error"] for r in done]
        if numeric(values):
            xs = values
            positive = [v for v in values if v > 0]
            if len(positive) == len(values) and max(values) >= 10 * min(values):
                ax.set_xscale("log")
        else:
            ticks = sorted({json.dumps(v) for v in values}, key=lambda t: (len(t), t))
            xs = [ticks.index(json.dumps(v)) for v in values]
            ax.set_xlim(-0.5, len(ticks) - 0.5)
            ax.set_xticks(range(len(ticks)), [t.replace('"', "") for t in ticks], rotation=30 if len(ticks) > 4 else 0)
        ax.scatter(xs, errors, color="C0", alpha=0.8, label="variants")
        bx = xs[done.index(best)]
        ax.plot([bx], [100 * best["best_validation_error"]], marker="*", markersize=16, color="C3",
                linestyle="none",
                label=f"best: variant {best['variant']} ({100 * best['best_validation_error']:.2f} %)")
        ax.set_xlabel(key)
        ax.set_ylabel("best validation error (%)")
        ax.grid(True, alpha=0.3)
    axes[0][0].legend(fontsize=7)
    fig.suptitle(f"sweep: {len(done)} of {len(rows)} variants finished")
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=100)
    plt.close(fig)
    write_atomic(out, buffer.getvalue(), mode=0o644)
