"""The preview grid: one labelled row per class, any image sizes, atomic PNG output."""
import os

import numpy as np
import pytest
from PIL import Image

from data_writers import write_class_folder, write_image
from hvitgan_tf.data import DataError, open_source, write_preview


def test_mixed_sizes_and_a_short_class(tmp_path):
    root = tmp_path / "data"
    write_class_folder(str(root), per_class=6, size=16, classes=("many",))
    write_image(str(root / "few" / "a.png"), np.full((30, 20, 3), 200, np.uint8))
    write_image(str(root / "few" / "b.png"), np.full((12, 12, 3), 50, np.uint8))
    source = open_source(f"folder:{root}", split_fractions=(1, 0, 0))
    out = tmp_path / "out" / "grid.png"
    result = write_preview(source, str(out), per_class=4, seed=0)
    assert result["shown"] == {"few": 2, "many": 4}
    with Image.open(out) as image:
        grid = np.asarray(image.convert("RGB"))
    assert grid.shape[0] > 2 * 96 and grid.shape[1] > 4 * 96  # two rows of 96 px cells
    assert os.listdir(out.parent) == ["grid.png"]


def test_empty_split_row_and_bad_name(tmp_path):
    source = open_source("demo", split_fractions=(1, 0, 0))
    result = write_preview(source, str(tmp_path / "v.png"), split="validation", per_class=2)
    assert result["shown"] == {"dab_negative": 0, "dab_positive": 0}
    with pytest.raises(DataError, match="ending in .png"):
        write_preview(source, str(tmp_path / "v.jpg"))
