"""Metrics against scikit-learn, and the folds' coverage and separation."""

import numpy as np
import pytest
from mesti.train import protocols
from mesti.train.metrics import confusion, scores
from sklearn.metrics import accuracy_score, f1_score, recall_score
from sklearn.model_selection import train_test_split


@pytest.mark.parametrize("seed", range(12))
def test_scores_equal_sklearn(seed: int) -> None:
    rng = np.random.default_rng(seed)
    n_classes = int(rng.integers(2, 6))
    truth = rng.integers(0, n_classes, size=int(rng.integers(5, 200)))
    if seed % 3 == 0:  # a class absent from the truth but predicted
        truth[truth == n_classes - 1] = 0
    predicted = rng.integers(0, n_classes, size=truth.size)
    present = sorted(set(truth))
    got = scores(truth, predicted, n_classes)
    assert got["UF1"] == pytest.approx(f1_score(truth, predicted, labels=present,
                                                average="macro", zero_division=0))
    assert got["UAR"] == pytest.approx(recall_score(truth, predicted, labels=present,
                                                    average="macro", zero_division=0))
    assert got["ACC"] == pytest.approx(accuracy_score(truth, predicted))
    assert got["WF1"] == pytest.approx(f1_score(truth, predicted, labels=present,
                                                average="weighted", zero_division=0))
    assert confusion(truth, predicted, n_classes).sum() == truth.size


def test_loso_covers_every_subject_once_and_never_trains_on_it() -> None:
    rng = np.random.default_rng(0)
    subjects = np.array([f"{d}/s{rng.integers(0, 9)}" for d in rng.choice(["a", "b"], 120)])
    folds = protocols.loso(subjects)
    assert sorted(f.name for f in folds) == sorted(set(subjects))
    tested = np.concatenate([f.test for f in folds])
    assert sorted(tested) == list(range(len(subjects)))
    for fold in folds:
        assert set(subjects[fold.test]) == {fold.name}
        assert fold.name not in set(subjects[fold.train])
        assert len(fold.train) + len(fold.test) == len(subjects)
        val = protocols.with_validation(fold, subjects, 0.2, 1)
        assert not set(subjects[val.validation]) & set(subjects[val.train])
        assert fold.name not in set(subjects[val.validation])
        assert sorted(np.concatenate([val.train, val.validation])) == sorted(fold.train)


def test_stratified_holdout_is_stratified_and_seeded() -> None:
    labels = np.array([0] * 50 + [1] * 30 + [2] * 20)
    (fold,) = protocols.holdout(labels, 0.1, seed=3, split="stratified")
    assert np.bincount(labels[fold.test]).tolist() == [5, 3, 2]
    assert not set(fold.test) & set(fold.train)
    assert np.array_equal(fold.test, protocols.holdout(labels, 0.1, 3, "stratified")[0].test)
    assert not np.array_equal(fold.test, protocols.holdout(labels, 0.1, 4, "stratified")[0].test)


@pytest.mark.parametrize(("clips", "tested"), [(255, 26), (159, 16), (164, 17), (246, 25)])
def test_published_holdout_is_scikit_learns_plain_split(clips: int, tested: int) -> None:
    # The paper's accuracies are k/26 (CASME II, 255 clips) and k/16 (SAMM, 159 clips).
    labels = np.random.default_rng(clips).integers(0, 5, clips)
    for seed in (0, 1, 2023):
        (fold,) = protocols.holdout(labels, 0.1, seed)
        train, test = train_test_split(np.arange(clips), test_size=0.1, random_state=seed)
        assert len(fold.test) == tested
        assert fold.test.tolist() == sorted(test) and fold.train.tolist() == sorted(train)
    assert protocols.holdout(labels, 0.1, 0)[0].test.tolist() != \
        protocols.holdout(labels, 0.1, 0, "stratified")[0].test.tolist()
    with pytest.raises(ValueError, match="holdout split must be one of"):
        protocols.holdout(labels, 0.1, 0, "random")


def test_cross_dataset() -> None:
    datasets = np.array(["casme2"] * 4 + ["smic"] * 3 + ["samm"] * 2)
    (fold,) = protocols.cross(datasets, "casme2", "smic")
    assert fold.train.tolist() == [0, 1, 2, 3] and fold.test.tolist() == [4, 5, 6]
    with pytest.raises(ValueError, match="needs clips of both"):
        protocols.cross(datasets, "casme2", "casme3")


def test_lodo_and_empty_training_folds() -> None:
    datasets = np.array(["casme2"] * 3 + ["samm"] * 2 + ["smic"] * 4)
    folds = protocols.lodo(datasets)
    assert [f.name for f in folds] == ["lodo:casme2", "lodo:samm", "lodo:smic"]
    for fold in folds:
        name = fold.name.split(":")[1]
        assert set(datasets[fold.test]) == {name} and name not in set(datasets[fold.train])
        assert len(fold.train) + len(fold.test) == len(datasets)
    with pytest.raises(ValueError, match="fold casme2/s1 has no training clip"):
        protocols.loso(np.array(["casme2/s1"] * 4))
    with pytest.raises(ValueError, match="fold lodo:smic has no training clip"):
        protocols.lodo(np.array(["smic"] * 4))
    assert protocols.evaluation_kind("holdout") == "subject-dependent"
    assert protocols.evaluation_kind("loso") == "subject-independent"
