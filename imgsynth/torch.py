"""PyTorch entry points:
`from imgsynth.torch import AugmentedDataset, RecipeTransform, BatchAugment, ShardDataset,
record_target`.

Importing this module imports torch; `import imgsynth` alone never does.
"""

from imgsynth.augment.torch import AugmentedDataset, BatchAugment, RecipeTransform, record_target
from imgsynth.io.shards import ShardDataset

__all__ = ["AugmentedDataset", "BatchAugment", "RecipeTransform", "ShardDataset", "record_target"]
