"""ImageFolder: one sub-folder per class (`root/<class>/**/<image>`) -> `Sample.label`.

Classes are the sorted names of the sub-folders that hold at least one image (hidden
folders are ignored, as torchvision does). Images directly in the root have no class:
they are left out with a LabelWarning.
"""

from __future__ import annotations

import warnings
from collections import Counter
from pathlib import Path

from imgsynth.core.errors import InputError
from imgsynth.io.folders import image_files
from imgsynth.io.readers.base import ImageEntry, LabeledDataset, LabelWarning


def read_imagefolder(path: Path) -> LabeledDataset:
    entries = []
    classes = []
    for folder in sorted(p for p in path.iterdir() if p.is_dir() and not p.name.startswith(".")):
        images = image_files(folder)
        if images:
            classes.append(folder.name)
            entries.extend(ImageEntry(image=p, label=folder.name) for p in images)
    loose = image_files(path, recursive=False)
    if loose:
        warnings.warn(f"{path}: {len(loose)} image(s) directly in the root have no class folder "
                      "and are left out", LabelWarning, stacklevel=2)
    if not entries:
        raise InputError("no class sub-folders with images (ImageFolder layout: ROOT/<class>/<image>)",
                         file=str(path), fix="point the dataset path at the folder of class folders")
    return LabeledDataset("imagefolder", path, classes, entries, Counter())
