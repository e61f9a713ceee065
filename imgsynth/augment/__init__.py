"""Classical augmentation that keeps labels right (the `augment` stage and imgsynth.torch)."""
