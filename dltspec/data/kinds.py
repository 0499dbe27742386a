"""The dataset kinds: one record each, with everything dltspec knows of a kind.

A :class:`Kind` names its loader (a function of :mod:`dltspec.data.loaders`, which imports numpy:
``dltspec check`` reads the shapes here without it), the shape of one example where the kind
fixes it, its number of classes, and how an image's 8-bit pixels become its ``x`` (for ``predict``).
The schema's ``dataset`` kinds name the same, by test.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass


@dataclass(frozen=True)
class Kind:
    """One dataset kind."""

    loader: str  # the name of its function in dltspec.data.loaders: (block, base_dir, download) -> Splits
    image_shape: tuple[int, int, int] | None = None  # (channels, height, width), where the kind fixes it
    n_classes: int | None = None  # where the kind fixes it
    pixel_scale: Callable[[dict], float | None] = lambda block: None  # 8-bit pixel -> x; None: not known


#: dataset kind -> :class:`Kind`
KINDS: dict[str, Kind] = {
    "mnist": Kind("load_mnist", (1, 28, 28), 10, lambda block: 1 / 256),
    "pickle": Kind("load_tutorial_pickle", pixel_scale=lambda block: 1 / 256),
    "digits": Kind("load_digits", (1, 8, 8), 10, lambda block: 1 / 255),
    "idx": Kind("load_idx", pixel_scale=lambda block: block["scale"]),  # IDX files hold the 8-bit pixels
    "npz": Kind("load_npz"),
    "npy": Kind("load_npy"),
}
