"""Shared building blocks: the sample record, rng derivation, errors, geometry."""
