"""The per-sample Generator is the one numpy makes of (seed, stage key, index): the same
numbers whatever the speed-ups in making it."""

import numpy as np
import pytest

from imgsynth.core.rng import sample_rng, seed_sequence, stage_key

VALUES = [0, 1, 5, 2**31, 2**32 - 1, 2**32, 2**32 + 7, 2**63 + 11, 2**64 - 1, 2**64, 2**70 + 3, 123456789]


@pytest.mark.parametrize("stage", ["augment", "source", "augment/epoch/3", "ünï"])
def test_sequences_and_generators_are_numpys_own(stage):
    for seed in VALUES:
        for index in VALUES:
            reference = np.random.SeedSequence([seed, stage_key(stage), index])
            ours = seed_sequence(seed, stage, index)
            assert np.array_equal(ours.generate_state(8, np.uint64), reference.generate_state(8, np.uint64))
            assert np.array_equal(ours.spawn(1)[0].generate_state(2), reference.spawn(1)[0].generate_state(2))
    want = np.random.Generator(np.random.PCG64(np.random.SeedSequence([7, stage_key(stage), 12]))).random(5)
    assert np.array_equal(sample_rng(7, stage, 12).random(5), want)


def test_a_negative_seed_or_index_is_refused_as_numpy_refuses_it():
    for seed, index in [(-1, 0), (0, -3)]:
        with pytest.raises(ValueError, match="negative"):
            seed_sequence(seed, "s", index)
