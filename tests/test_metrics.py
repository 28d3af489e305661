"""Metrics against values worked out by hand from their definitions."""

from __future__ import annotations

import numpy as np
import pytest

from models.metrics import (
    accuracy,
    binary_f1,
    ccc,
    classification_report,
    confusion_matrix,
    macro_f1,
    mae,
    pearson,
    regression_report,
    rmse,
    uar,
)

T = np.array([1.0, 2.0, 3.0, 4.0])


def test_shifted_prediction():
    # means 2.5 / 3.5, variances 1.25 / 1.25, covariance 1.25:
    # CCC = 2 * 1.25 / (1.25 + 1.25 + 1) = 5/7; r = 1; every error is 1.
    p = T + 1.0
    assert ccc(T, p) == pytest.approx(5.0 / 7.0)
    assert pearson(T, p) == pytest.approx(1.0)
    assert rmse(T, p) == pytest.approx(1.0)
    assert mae(T, p) == pytest.approx(1.0)


def test_scaled_prediction():
    # p = 2 t: mean 5, variance 5, covariance 2.5: CCC = 5 / (1.25 + 5 + 6.25) = 0.4.
    p = 2.0 * T
    assert ccc(T, p) == pytest.approx(0.4)
    assert pearson(T, p) == pytest.approx(1.0)
    assert rmse(T, p) == pytest.approx(np.sqrt((1 + 4 + 9 + 16) / 4))
    assert mae(T, p) == pytest.approx(2.5)


def test_anticorrelated_and_perfect():
    assert ccc(T, T) == pytest.approx(1.0)
    assert ccc(T, T[::-1]) == pytest.approx(-1.0)  # same mean and variance, reversed
    assert pearson(T, T[::-1]) == pytest.approx(-1.0)


def test_constant_cases():
    c = np.full(4, 5.0)
    assert pearson(T, c) == 0.0  # no association to measure
    assert ccc(T, c) == 0.0  # covariance 0
    assert ccc(c, c) == 1.0  # identical constants agree
    assert ccc(c, c + 1.0) == 0.0


def test_regression_report_and_errors():
    rep = regression_report(T, T + 1.0)
    assert set(rep) == {"ccc", "pearson", "rmse", "mae"}
    with pytest.raises(ValueError, match="4 values"):
        ccc(T, T[:3])
    with pytest.raises(ValueError, match="at least one"):
        rmse(np.array([]), np.array([]))


Y_TRUE = np.array([0, 0, 1, 1, 2, 2])
Y_PRED = np.array([0, 1, 1, 1, 2, 0])


def test_confusion_and_accuracy():
    cm = confusion_matrix(Y_TRUE, Y_PRED, 3)
    assert cm.tolist() == [[1, 1, 0], [0, 2, 0], [1, 0, 1]]
    assert accuracy(Y_TRUE, Y_PRED) == pytest.approx(4 / 6)


def test_uar_and_macro_f1():
    # recalls 1/2, 2/2, 1/2 -> UAR 2/3
    assert uar(Y_TRUE, Y_PRED, 3) == pytest.approx(2 / 3)
    # F1 = 2 tp / (support + predicted): 2/4, 4/5, 2/3
    assert macro_f1(Y_TRUE, Y_PRED, 3) == pytest.approx((0.5 + 0.8 + 2 / 3) / 3)


def test_absent_classes():
    # With 7 classes, classes 3-6 never occur: UAR and macro-F1 ignore them.
    assert uar(Y_TRUE, Y_PRED, 7) == pytest.approx(2 / 3)
    assert macro_f1(Y_TRUE, Y_PRED, 7) == pytest.approx((0.5 + 0.8 + 2 / 3) / 3)
    # A class predicted but never true counts in macro-F1 with F1 0, not in UAR.
    t, p = np.array([0, 0]), np.array([0, 3])
    assert uar(t, p, 7) == pytest.approx(0.5)
    assert macro_f1(t, p, 7) == pytest.approx((2 / 3 + 0.0) / 2)


def test_classification_report_and_errors():
    rep = classification_report(Y_TRUE, Y_PRED, 3)
    assert rep["confusion"] == [[1, 1, 0], [0, 2, 0], [1, 0, 1]]
    assert rep["accuracy"] == pytest.approx(4 / 6)
    with pytest.raises(ValueError, match="0..2"):
        confusion_matrix(np.array([0, 3]), np.array([0, 1]), 3)
    with pytest.raises(ValueError, match="labels"):
        accuracy(np.array([0, 1]), np.array([0]))


def test_binary_f1_refuses_labels_other_than_0_and_1() -> None:
    """A class index (2) or a 1-9 rating passed where high/low was meant would
    otherwise just count as "not positive" and report a plausible, wrong F1."""
    with pytest.raises(ValueError, match="labels 0 and 1"):
        binary_f1(np.array([0, 2]), np.array([0, 1]))
    with pytest.raises(ValueError, match="labels 0 and 1"):
        binary_f1(np.array([0, 1]), np.array([0, 7]))
    assert binary_f1(np.array([0, 1, 1]), np.array([1, 1, 0])) == pytest.approx(0.5)
