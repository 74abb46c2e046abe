"""``demo``: real IHC tissue patches that ship with scikit-image (docs/method.md §8), no download.

The image is ``skimage.data.immunohistochemistry()``: 512 x 512 RGB of colon tissue stained with
haematoxylin (blue nuclei) and DAB (brown, the antibody's signal). It is cut into
``PATCH_SIZE = 48`` px patches every ``STRIDE = 16`` px, a 30 x 30 grid of 900 patches in
raster order (row by row from the top left).

Labelling rule (colour deconvolution, ``skimage.color.rgb2hed``):

* a pixel is *DAB-stained* when its DAB optical density exceeds ``DAB_PIXEL_THRESHOLD = 0.06``
  (just under the Otsu threshold of this image's DAB channel, 0.062);
* a patch is ``dab_positive`` (label 1) when at least ``POSITIVE_AREA_FRACTION = 0.5`` of its
  pixels are DAB-stained, else ``dab_negative`` (label 0).

That gives 426 ``dab_negative`` patches (stroma with blue nuclei, and the white background at
the image's left edge) and 474 ``dab_positive`` ones (brown-membraned epithelium).

The demo has no splits of its own: it gets the seeded stratified split of ``open_source``
(default 80/10/10). Neighbouring patches overlap by two thirds, so validation and test patches
share pixels with training patches: the demo exercises the pipeline, it does not measure
generalisation.
"""
from __future__ import annotations

import functools

import numpy as np

from hvitgan_tf.data.base import InMemorySource

PATCH_SIZE = 48
STRIDE = 16
DAB_PIXEL_THRESHOLD = 0.06
POSITIVE_AREA_FRACTION = 0.5
CLASS_NAMES = ("dab_negative", "dab_positive")


@functools.lru_cache(maxsize=1)
def demo_patches():
    """``(patches uint8 [900, 48, 48, 3], labels int32 [900], dab_fraction float32 [900])``.

    Computed once per process (about 0.1 s after scikit-image has loaded the image); the arrays
    are read-only because every caller shares them.
    """
    from skimage import color, data

    image = data.immunohistochemistry()  # [512, 512, 3] uint8
    stained = color.rgb2hed(image)[..., 2] > DAB_PIXEL_THRESHOLD  # [512, 512] bool
    windows = np.lib.stride_tricks.sliding_window_view
    # [30, 30, 1, 48, 48, 3] -> [900, 48, 48, 3]: every STRIDE-th window, raster order.
    patches = windows(image, (PATCH_SIZE, PATCH_SIZE, 3))[::STRIDE, ::STRIDE]
    patches = np.ascontiguousarray(patches.reshape(-1, PATCH_SIZE, PATCH_SIZE, 3))
    # [30, 30, 48, 48] -> [900]: stained share of each patch.
    fraction = windows(stained, (PATCH_SIZE, PATCH_SIZE))[::STRIDE, ::STRIDE].mean(axis=(-2, -1))
    fraction = fraction.reshape(-1).astype(np.float32)
    labels = (fraction >= POSITIVE_AREA_FRACTION).astype(np.int32)
    for array in (patches, labels, fraction):
        array.setflags(write=False)
    return patches, labels, fraction


class DemoSource(InMemorySource):
    """The built-in demo (see the module docstring for the patch grid and labelling rule)."""

    kind = "demo"

    def __init__(self, spec="demo", *, split_fractions, split_seed=0, **subset):
        patches, labels, _ = demo_patches()
        super().__init__(
            spec, CLASS_NAMES, patches, labels,
            split_fractions=split_fractions, split_seed=split_seed,
            description=(f"{len(labels)} patches of {PATCH_SIZE} px (stride {STRIDE}) cut from "
                         "skimage.data.immunohistochemistry(); dab_positive = at least "
                         f"{POSITIVE_AREA_FRACTION:.0%} of pixels with rgb2hed DAB > "
                         f"{DAB_PIXEL_THRESHOLD}"),
            location="skimage.data.immunohistochemistry()",
            **subset,
        )
