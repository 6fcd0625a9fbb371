"""Scoring generated digits with an independent classifier fitted on real digits.

It lives beside the ``digits`` data set because it only means something on that data.
Used by ``gantool evaluate`` (the ``digits`` figure, for runs on the ``digits`` data), the
learning tests and the benchmarks: a generator that learned the digits makes images that
a classifier trained only on real digits reads confidently, across classes; a
translator's outputs are read as the target digit.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np


@dataclass(frozen=True)
class DigitScore:
    mean_top_probability: float
    classes_covered: int
    class_counts: tuple[int, ...]
    predictions: tuple[int, ...]

    def as_row(self) -> dict[str, float]:
        return {"mean_top_p": round(self.mean_top_probability, 3),
                "classes": self.classes_covered}


NOT_A_DIGIT = 10


def _non_digits(data: np.ndarray, target: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Things a generator makes before it learns: scrambled digits, noise, flat grey."""
    n = len(data) // 3
    scrambled = np.stack([rng.permutation(data[i]) for i in rng.integers(0, len(data), n)])
    noise = rng.uniform(0, 16, size=(n, 64)) * rng.uniform(0.2, 1.0, size=(n, 1))
    flat = np.repeat(rng.uniform(0, 16, size=(n, 1)), 64, axis=1)
    return np.concatenate([scrambled, noise, flat])


@lru_cache(maxsize=1)
def digit_classifier():
    """A classifier of 8x8 digits with an eleventh class, "not a digit".

    Fitted on scikit-learn's real digits and on non-digits made from them, so that noise
    or a blur is not read confidently as some digit.
    """
    from sklearn.datasets import load_digits
    from sklearn.linear_model import LogisticRegression

    digits = load_digits()
    negatives = _non_digits(digits.data, digits.target, np.random.default_rng(0))
    x = np.concatenate([digits.data, negatives]) / 16.0
    y = np.concatenate([digits.target, np.full(len(negatives), NOT_A_DIGIT)])
    return LogisticRegression(C=1.0, max_iter=2000).fit(x, y)


def to_digit_features(images: np.ndarray) -> np.ndarray:
    """``[N, H, W, 3]`` uint8 images to the classifier's 64 features (8x8, values 0-16)."""
    import cv2

    gray = images.mean(axis=3).astype(np.float32)
    small = np.stack([cv2.resize(g, (8, 8), interpolation=cv2.INTER_AREA) for g in gray])
    return (small / 255.0 * 16.0).reshape(len(images), 64)


def digit_probabilities(features: np.ndarray) -> np.ndarray:
    """``[N, 11]`` probabilities (digits 0-9, then "not a digit") of :func:`to_digit_features`."""
    return digit_classifier().predict_proba(features / 16.0)


def score_digits(images: np.ndarray, min_share: float = 0.01) -> DigitScore:
    """Confidence and class coverage of a batch of generated digit images."""
    return _score(digit_probabilities(to_digit_features(images)), min_share)


def _score(proba: np.ndarray, min_share: float = 0.01) -> DigitScore:
    """A class is covered when at least ``min_share`` of the images are read as it."""
    digit_proba = proba[:, :NOT_A_DIGIT]
    predictions = digit_proba.argmax(axis=1)
    # An image read as "not a digit" covers no class.
    counts = np.bincount(predictions[proba.argmax(axis=1) != NOT_A_DIGIT], minlength=10)
    covered = int((counts >= max(1, min_share * len(proba))).sum())
    return DigitScore(float(digit_proba.max(axis=1).mean()), covered, tuple(int(c) for c in counts),
                      tuple(int(p) for p in predictions))


class DigitReading:
    """``gantool evaluate``'s figure for runs on the ``digits`` data: the classifier's reading.

    Translation: the share of translated images whose most likely digit is the target
    domain's, the share read as no digit at all, and, as a check of the classifier, the
    share of real inputs read as their own digit. Generation: classes covered (of 10), the
    mean top probability and the share read as no digit.
    """

    def __init__(self, column) -> None:
        self.column = column
        self.outputs: list[np.ndarray] = []
        self.inputs: list[np.ndarray] = []

    def update(self, batch) -> None:
        from translator.data.pipeline import to_uint8

        self.outputs.append(to_digit_features(to_uint8(batch.outputs)))
        if self.column.kind == "translation":
            self.inputs.append(to_digit_features(to_uint8(batch.inputs)))

    def result(self) -> dict[str, float]:
        proba = digit_probabilities(np.concatenate(self.outputs))
        not_a_digit = float((proba.argmax(axis=1) == NOT_A_DIGIT).mean())
        if self.column.kind != "translation":
            score = _score(proba)
            return {"classes covered": score.classes_covered,
                    "mean top p": score.mean_top_probability, "not a digit": not_a_digit}
        read = proba[:, :NOT_A_DIGIT].argmax(axis=1)
        real = digit_probabilities(np.concatenate(self.inputs))[:, :NOT_A_DIGIT].argmax(axis=1)
        return {"read as target": float((read == int(self.column.target)).mean()),
                "not a digit": not_a_digit,
                "real read as source": float((real == int(self.column.source)).mean())}


def digit_figure(run, column) -> DigitReading | None:
    """The :class:`translator.FigureSpec` factory: runs on the ``digits`` data only."""
    return DigitReading(column) if run.train.data == "digits" else None


def read_digits(images: np.ndarray) -> np.ndarray:
    """What the classifier reads in each ``[N, H, W, 3]`` uint8 image: 0-9, or NOT_A_DIGIT."""
    return digit_probabilities(to_digit_features(images)).argmax(axis=1)


def target_shares(images: np.ndarray, target: int) -> tuple[float, float]:
    """Shares of ``[N, H, W, 3]`` uint8 images read as ``target`` and as not a digit."""
    read = read_digits(images)
    return float((read == target).mean()), float((read == NOT_A_DIGIT).mean())
