"""Evaluation protocols as lists of folds: which clips train and which test.

- ``loso``: leave one subject out; a subject is (dataset, subject), so a composite of
  several datasets never merges two datasets' "sub01". Every subject is tested exactly once.
- ``holdout``: one seeded 90/10 split of the clips, as in the paper's input comparison (its
  Experiment 01). ``published`` (the default) is a plain split over all clips: the paper's
  accuracies are multiples of 1/26 (CASME II, 255 clips) and 1/16 (SAMM, 159 clips), which
  is ceil(10 %) of each dataset, the test size of scikit-learn's ``train_test_split``, whose
  shuffle it reproduces (``numpy.random.RandomState(seed).permutation``). Neither the
  paper's code nor FDP's and MOL's (LOSO only) is public for this split, so the seed and the
  clip order (the stores' order here) are this project's. ``stratified`` holds out
  round(10 %) of each class instead. Either splits clips, not subjects: a subject's clips
  can sit on both sides, so its figures are **subject-dependent** and not comparable with LOSO.
- ``cross``: train on one dataset, test on another.
- ``lodo``: leave one dataset out (as MEB offers): one fold per dataset, trained on all the
  others.

Every fold must train on at least one clip: a fold without one (LOSO on a single subject,
LODO on a single dataset) is an error naming it, never a run that trains on nothing.

Validation subjects, when asked for, are carved from a fold's training subjects only.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


class ProtocolError(ValueError):
    """A protocol the stores cannot support (a fold without training clips, a dataset named
    by ``cross`` that no store holds): a user's mistake, reported in one line."""


@dataclass(frozen=True)
class Fold:
    name: str
    train: np.ndarray        # indices into the clip table
    test: np.ndarray
    validation: np.ndarray   # empty unless a validation split was asked for


# Whether a protocol's test clips come from subjects its training never saw.
SUBJECT_INDEPENDENT = {"loso": True, "lodo": True, "cross": True, "holdout": False}


def evaluation_kind(protocol: str) -> str:
    """'subject-independent' or 'subject-dependent', as written into a run's outputs."""
    return "subject-independent" if SUBJECT_INDEPENDENT[protocol] else "subject-dependent"


def loso(subjects: np.ndarray) -> list[Fold]:
    empty = np.array([], np.int64)
    return require_training([
        Fold(str(s), np.flatnonzero(subjects != s), np.flatnonzero(subjects == s), empty)
        for s in sorted(set(subjects))])


def lodo(datasets: np.ndarray) -> list[Fold]:
    """One fold per dataset: test on it, train on every other dataset."""
    empty = np.array([], np.int64)
    return require_training([
        Fold(f"lodo:{d}", np.flatnonzero(datasets != d), np.flatnonzero(datasets == d), empty)
        for d in sorted(set(datasets))],
        f"lodo needs stores of two or more datasets; these hold {sorted(set(datasets))}")


def require_training(folds: list[Fold], why: str = "one subject, or one dataset, in the "
                     "stores") -> list[Fold]:
    """The folds, unless one has no training clip (a protocol run on too little data)."""
    for fold in folds:
        if not len(fold.train):
            raise ProtocolError(f"fold {fold.name} has no training clip: every clip belongs to "
                                f"its test side ({why})")
    return folds


HOLDOUT_SPLITS = ("published", "stratified")


def holdout(labels: np.ndarray, test_fraction: float, seed: int,
            split: str = "published") -> list[Fold]:
    """One split: ``published``, ceil(``test_fraction`` * clips) clips drawn over all clips;
    ``stratified``, round(``test_fraction``) of each class (at least one clip per class)."""
    if split == "published":
        order = np.random.RandomState(seed).permutation(len(labels))
        test_idx = np.sort(order[: int(np.ceil(test_fraction * len(labels)))]).astype(np.int64)
        train = np.setdiff1d(np.arange(len(labels)), test_idx)
        return require_training([Fold("holdout", train, test_idx, np.array([], np.int64))])
    if split != "stratified":
        raise ValueError(f"holdout split must be one of {HOLDOUT_SPLITS}, not {split!r}")
    rng = np.random.default_rng(seed)
    test = []
    for label in sorted(set(labels)):
        members = rng.permutation(np.flatnonzero(labels == label))
        if len(members) > 1:
            test.extend(members[: max(1, round(test_fraction * len(members)))])
    test_idx = np.array(sorted(test), np.int64)
    train = np.setdiff1d(np.arange(len(labels)), test_idx)
    return require_training([Fold("holdout", train, test_idx, np.array([], np.int64))])


def cross(datasets: np.ndarray, train_on: str, test_on: str) -> list[Fold]:
    train = np.flatnonzero(datasets == train_on)
    test = np.flatnonzero(datasets == test_on)
    if not train_on or not test_on:
        raise ProtocolError("protocol cross needs train.train_on and train.test_on (dataset "
                            f"names); the stores hold {sorted(set(datasets))}")
    missing = [name for name, rows in ((train_on, train), (test_on, test)) if not len(rows)]
    if missing:
        raise ProtocolError(f"fold {train_on}->{test_on}: no clip of {' or '.join(missing)} in "
                            f"the stores (they hold {sorted(set(datasets))}); cross needs "
                            "clips of both train.train_on and train.test_on")
    return [Fold(f"{train_on}->{test_on}", train, test, np.array([], np.int64))]


def with_validation(fold: Fold, subjects: np.ndarray, fraction: float, seed: int) -> Fold:
    """Move a random ``fraction`` of the fold's training subjects (at least one) to validation."""
    train_subjects = sorted(set(subjects[fold.train]))
    if len(train_subjects) < 2:
        raise ProtocolError(f"fold {fold.name}: too few training subjects for a validation "
                            "split")
    rng = np.random.default_rng(seed)
    count = max(1, round(fraction * len(train_subjects)))
    chosen = set(rng.choice(train_subjects, size=count, replace=False))
    is_val = np.array([subjects[i] in chosen for i in fold.train])
    return Fold(fold.name, fold.train[~is_val], fold.test, fold.train[is_val])
