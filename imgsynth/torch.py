"""PyTorch entry points:
`from imgsynth.torch import AugmentedDataset, RecipeTransform, BatchAugment, ShardDataset`.

Importing this module imports torch; `import imgsynth` alone never does.
"""

from imgsynth.augment.torch import AugmentedDataset, BatchAugment, RecipeTransform
from imgsynth.io.shards import ShardDataset

__all__ = ["AugmentedDataset", "BatchAugment", "RecipeTransform", "ShardDataset"]
