"""Utility: train on synthetic, test on real (TSTR).

The real labeled set is split (stratified, seeded) into a train part and a held-out test
part. The same classifier (standardised features + multinomial logistic regression) is
trained three times: on real-train (TRTR, the baseline), on synthetic (TSTR) and on
real-train + synthetic, and always tested on the held-out real part. The ratio
TSTR / TRTR says how much of the real data's usefulness the synthetic set carries.
"""

from __future__ import annotations

import warnings

import numpy as np

from imgsynth.core.errors import InputError


def train_and_score(train_x, train_y, test_x, test_y, seed: int) -> float:
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    model = make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000, random_state=seed))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # convergence chatter on tiny sets
        model.fit(train_x, train_y)
    return float(model.score(test_x, test_y))


def tstr(real_features: np.ndarray, real_labels, fake_features: np.ndarray, fake_labels, *,
         test_fraction: float = 0.3, seed: int = 0) -> dict:
    from sklearn.model_selection import train_test_split

    real_labels = np.asarray(real_labels, dtype=str)
    fake_labels = np.asarray(fake_labels, dtype=str)
    classes, counts = np.unique(real_labels, return_counts=True)
    if len(classes) < 2:
        raise InputError("TSTR needs at least 2 classes in the real set", fix="label the real set")
    if len(np.unique(fake_labels)) < 2:
        raise InputError("TSTR needs at least 2 classes in the synthetic set",
                         fix="generate more than one class")
    stratify = real_labels if counts.min() >= 2 else None
    train_x, test_x, train_y, test_y = train_test_split(
        real_features, real_labels, test_size=test_fraction, random_state=seed, stratify=stratify)
    trtr = train_and_score(train_x, train_y, test_x, test_y, seed)
    tstr_acc = train_and_score(fake_features, fake_labels, test_x, test_y, seed)
    mixed = train_and_score(np.concatenate([train_x, fake_features]),
                            np.concatenate([train_y, fake_labels]), test_x, test_y, seed)
    return {
        "classifier": "StandardScaler + LogisticRegression (multinomial, lbfgs) on extractor features",
        "train_real_test_real": trtr,
        "train_synth_test_real": tstr_acc,
        "train_real_plus_synth_test_real": mixed,
        "tstr_over_trtr": tstr_acc / trtr if trtr > 0 else None,
        "n_real_train": int(len(train_y)), "n_real_test": int(len(test_y)),
        "n_synth_train": int(len(fake_labels)), "test_fraction": test_fraction,
    }
