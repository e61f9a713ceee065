"""PyTorch entry points:
`from imgsynth.torch import AugmentedDataset, RecipeTransform, BatchAugment, ShardDataset,
record_target`.

Importing this module imports torch; `import imgsynth` alone never does. It also makes every
later fork of the process close OpenCV's thread pool first (imgsynth.core.fork), so forked
DataLoader workers never hang on the parent's OpenCV threads.
"""

from imgsynth.augment.torch import AugmentedDataset, BatchAugment, RecipeTransform, record_target
from imgsynth.io.shards import ShardDataset

__all__ = ["AugmentedDataset", "BatchAugment", "RecipeTransform", "ShardDataset", "record_target"]
