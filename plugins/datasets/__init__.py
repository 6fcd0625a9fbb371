"""``translator.plugins.datasets``: the built-in data sets (entry point ``builtin_data``),
registered like any third party's.

The named sets ``demo`` (synthetic, :mod:`.demo`), ``digits`` (real handwritten digits,
:mod:`.digits`) and ``digit-edges`` (pairs of a digit's outline and the digit,
:mod:`.digit_edges`), and the folder formats CelebA (:mod:`.celeba`), ``trainA/trainB``
and domain folders and any folder of images (:mod:`.folders`), and the reference's aligned
pairs (:mod:`.aligned`). The core keeps only what every
data set shares (``ImageList``, decoding, the batch pipeline); with this plugin disabled
(``GANTOOL_DISABLE_PLUGINS=builtin_data``) none of these names exists. The ``digits``
figure of ``gantool evaluate`` (:mod:`.digit_reading`) comes with the digits.
"""

from __future__ import annotations

import translator

from . import aligned, celeba, demo, digit_edges, digit_reading, digits, folders


@translator.hookimpl
def register_datasets(register):
    register(translator.DatasetSpec(
        "demo", "synthetic disks (generation) or day/night scenes (translation), no download",
        demo.open_demo, pairs=True))
    register(translator.DatasetSpec(
        "digits", "scikit-learn's 1797 real handwritten digits; domains are digits (6, 9)",
        digits.open_digits, flip_changes_meaning=True))
    register(translator.DatasetSpec(
        "digit-edges", "pairs (edges, digit) from scikit-learn's real digits, for paired "
        "models (pix2pix)", digit_edges.open_digit_edges, flip_changes_meaning=True,
        pairs=True))
    register(translator.DatasetSpec(
        "celeba", "CelebA root: img_align_celeba/ + list_attr_celeba.txt; domain words "
        "map to attributes", celeba.open_celeba, detect=celeba.detect, priority=10, faces=True))
    register(translator.DatasetSpec(
        "cyclegan-folders", "trainA/ trainB/ (testA/ testB/) folders; for paired models, "
        "files pair by name", folders.open_cyclegan, detect=folders.detect_cyclegan,
        priority=20, pairs=True))
    register(translator.DatasetSpec(
        "aligned", "the reference's aligned pairs: train/ (val/, test/) of A|B images side "
        "by side", aligned.open_aligned, detect=aligned.detect_aligned, priority=25,
        pairs=True))
    register(translator.DatasetSpec(
        "domain-folders", "one subfolder per domain, named like the domain",
        folders.open_domain_folders, detect=folders.detect_domain_folders, priority=30))
    register(translator.DatasetSpec(
        "image-folder", "any folder of images (generation models)",
        folders.open_image_folder, detect=folders.detect_image_folder, priority=90))


@translator.hookimpl
def register_figures(register):
    register(translator.FigureSpec(
        "digits", "the digit classifier's reading of runs on the digits data",
        digit_reading.digit_figure))
