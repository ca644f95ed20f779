"""Free-text answers parse to one label, so task accuracy is an exact match of labels."""

from __future__ import annotations

import pytest

from tuner.measure.labels import parse_label

SENTIMENT = ["positive", "negative", "neutral"]


@pytest.mark.parametrize(("answer", "label"), [
    ("Positive.", "positive"),
    ("negative", "negative"),
    ("The headline is neutral.", "neutral"),
    ("Neutral or positive, hard to say", "neutral"),  # the first one named
    ("The sentiment of this headline is", "the sentiment of this headline is"),  # names none: matches nothing
    ("\n\n  Negative\nbecause the dividend was cut", "negative"),
])
def test_answers_parse_to_the_choice_they_name(answer, label):
    assert parse_label(answer, SENTIMENT) == label


def test_multi_word_and_hyphenated_choices():
    assert parse_label("Carbon dioxide, of course.", ["carbon dioxide", "oxygen"]) == "carbon dioxide"
    assert parse_label("twenty-four hours", ["twenty-four", "twelve"]) == "twenty-four"
    assert parse_label("Paris", None) == "paris"
