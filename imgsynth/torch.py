"""PyTorch entry points: `from imgsynth.torch import AugmentedDataset, RecipeTransform, BatchAugment`.

Importing this module imports torch; `import imgsynth` alone never does.
"""

from imgsynth.augment.torch import AugmentedDataset, BatchAugment, RecipeTransform

__all__ = ["AugmentedDataset", "BatchAugment", "RecipeTransform"]
