"""Filter tiles as the tutorial's tile_raster_images draws them, for dense and convolutional first layers."""
from __future__ import annotations

import numpy as np
import pytest

from dltspec.pictures import PictureError, first_layer_tiles, grid_shape, scale_to_unit_interval, tile_raster_images


def test_each_tile_is_scaled_to_the_unit_interval_on_its_own():
    tiles = np.stack([np.arange(4.0).reshape(2, 2), 100 + 10 * np.arange(4.0).reshape(2, 2)])
    out = tile_raster_images(tiles, (1, 2), spacing=1)
    assert out.shape == (2, 5) and out.dtype == np.uint8
    assert out[:, 2].tolist() == [0, 0]  # the spacing column
    np.testing.assert_array_equal(out[:, :2], out[:, 3:])  # same pattern, whatever the scale
    assert out[0, 0] == 0 and out[1, 1] == 255
    assert scale_to_unit_interval(np.full((2, 2), 7.0)).max() == 0  # a constant tile: black, no NaN


def test_grid_is_as_square_as_possible():
    assert [grid_shape(n) for n in (1, 10, 20, 400, 500)] == [(1, 1), (3, 4), (4, 5), (20, 20), (22, 23)]


def test_first_layer_of_each_classifier():
    rng = np.random.RandomState(0)
    conv = {"conv0.W": rng.rand(20, 1, 5, 5), "conv0.b": np.zeros(20), "hidden0.W": rng.rand(800, 500)}
    name, tiles = first_layer_tiles(conv, (1, 28, 28))
    assert name == "conv0.W" and tiles.shape == (20, 5, 5)
    np.testing.assert_array_equal(tiles[3], conv["conv0.W"][3, 0])
    mlp = {"hidden0.W": rng.rand(784, 500), "output.W": rng.rand(500, 10)}
    name, tiles = first_layer_tiles(mlp, (1, 28, 28))
    assert name == "hidden0.W" and tiles.shape == (500, 28, 28)
    np.testing.assert_array_equal(tiles[7], mlp["hidden0.W"][:, 7].reshape(28, 28))  # a column is a unit
    name, tiles = first_layer_tiles({"output.W": rng.rand(64, 10)}, (1, 8, 8))
    assert name == "output.W" and tiles.shape == (10, 8, 8)
    with pytest.raises(PictureError, match="takes 64 inputs, not images of 28x28"):
        first_layer_tiles({"output.W": rng.rand(64, 10)}, (1, 28, 28))
