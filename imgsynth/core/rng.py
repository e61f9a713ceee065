"""The one way randomness is derived: (run seed, stage name, sample index).

Every stage gets a fresh numpy Generator per sample, so a sample's result does
not depend on which worker made it, in what order, or whether the run resumed.
Global `random`, `np.random` and cv2 state are never used.
"""

from __future__ import annotations

import hashlib

import numpy as np


def stage_key(name: str) -> int:
    """A stable 64-bit integer for a stage name (Python's hash() is salted per process)."""
    return int.from_bytes(hashlib.blake2b(name.encode("utf-8"), digest_size=8).digest(), "little")


def seed_sequence(seed: int, stage: str, index: int) -> np.random.SeedSequence:
    return np.random.SeedSequence([int(seed), stage_key(stage), int(index)])


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
