"""The one way randomness is derived: (run seed, stage name, sample index).

Every stage gets a fresh numpy Generator per sample, so a sample's result does
not depend on which worker made it, in what order, or whether the run resumed.
Global `random`, `np.random` and cv2 state are never used. What belongs to a whole run
rather than to one sample (a training run's split, data order, noise) comes from
(run seed, purpose numbers): run_rng, run_int_seed.
"""

from __future__ import annotations

import functools
import hashlib

import numpy as np


@functools.lru_cache(maxsize=1024)
def stage_key(name: str) -> int:
    """A stable 64-bit integer for a stage name (Python's hash() is salted per process)."""
    return int.from_bytes(hashlib.blake2b(name.encode("utf-8"), digest_size=8).digest(), "little")


def seed_sequence(seed: int, stage: str, index: int) -> np.random.SeedSequence:
    """SeedSequence([seed, stage_key(stage), index]), its entropy given as the uint32 words
    it makes of those numbers: the same sequence (tests/core/test_rng.py), made in 3 us
    instead of 9 (per sample and stage, and per item in a DataLoader)."""
    values = (int(seed), stage_key(stage), int(index))
    if min(values) < 0:
        return np.random.SeedSequence(list(values))  # its own error for a negative number
    words = []
    for value in values:  # least significant word first, at least one word per number
        words.append(value & 0xFFFFFFFF)
        value >>= 32
        while value:
            words.append(value & 0xFFFFFFFF)
            value >>= 32
    return np.random.SeedSequence(np.array(words, dtype=np.uint32))


def sample_rng(seed: int, stage: str, index: int) -> np.random.Generator:
    """The Generator for one sample in one stage."""
    return np.random.Generator(np.random.PCG64(seed_sequence(seed, stage, index)))


def seed_key(seed: int, stage: str, index: int) -> str:
    """Human-readable provenance recorded in the manifest."""
    return f"{int(seed)}/{stage}/{int(index)}"


def derived_int_seed(rng: np.random.Generator) -> int:
    """A 32-bit seed drawn from a sample's Generator, for libraries that need one
    (python `random` inside trdg, torch.Generator)."""
    return int(rng.integers(0, 2**32 - 1, dtype=np.uint64))


# Randomness of a whole run rather than of one sample (a training run: its held-out split,
# the data order of each epoch, its noise): the run seed and small integers naming the purpose.

def run_rng(seed: int, *purpose: int) -> np.random.Generator:
    """The Generator for one purpose of a run (no purpose: the run seed's own Generator)."""
    return np.random.Generator(np.random.PCG64(_run_sequence(seed, purpose)))


def run_int_seed(seed: int, *purpose: int) -> int:
    """A 63-bit seed for one purpose of a run, for torch.Generator.manual_seed."""
    return int(_run_sequence(seed, purpose).generate_state(2, np.uint64)[0] >> 1)


def _run_sequence(seed: int, purpose: tuple[int, ...]) -> np.random.SeedSequence:
    return np.random.SeedSequence([int(seed), *(int(p) for p in purpose)])
