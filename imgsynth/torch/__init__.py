"""The torch layer, PyTorch entry points:
`from imgsynth.torch import AugmentedDataset, RecipeTransform, BatchAugment, ShardDataset,
record_target`.

    targets.py  record_target; torchvision targets <-> Instances, box formats
    data.py     RecipeTransform, AugmentedDataset, ShardDataset (one shared epoch counter;
                the pools multi-image transforms draw other items from)
    batch.py    BatchAugment and its tensor kernels (<op>_<target>)

Importing this package (or any module of it) imports torch; `import imgsynth` alone never
does. It also makes every later fork of the process close OpenCV's thread pool first
(imgsynth.core.fork), so forked DataLoader workers never hang on the parent's OpenCV
threads, whatever the parent ran before (for `transform` functions calling OpenCV too).
"""

from imgsynth.core.fork import make_opencv_fork_safe

# Before any DataLoader can fork a worker from this process; here, as every module of the
# torch layer is imported through this package.
make_opencv_fork_safe()

from imgsynth.torch.batch import BatchAugment  # noqa: E402 - after the fork hook
from imgsynth.torch.data import AugmentedDataset, RecipeTransform, ShardDataset  # noqa: E402
from imgsynth.torch.targets import record_target  # noqa: E402

__all__ = ["AugmentedDataset", "BatchAugment", "RecipeTransform", "ShardDataset", "record_target"]
