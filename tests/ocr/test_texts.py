"""Text sources: template placeholders, and word/length ranges written [lo, hi]."""

from __future__ import annotations

import re

import numpy as np
import pytest
from pydantic import ValidationError

from imgsynth.core.ranges import RecipeDeprecationWarning
from imgsynth.core.rng import sample_rng
from imgsynth.ocr.config import CharsetTexts, OcrConfig, WordsTexts
from imgsynth.ocr.texts import MixedTexts, fill_template

WORDS = {"kind": "words", "dictionary": "en"}


def test_templates_fill_every_placeholder():
    rng = np.random.default_rng(0)
    text = fill_template("{date}|{time}|{amount}|{int}|{digits}|{id}|{plate}|{{x}}", rng)
    date, time, amount, integer, digits, ident, plate, literal = text.split("|")
    assert re.fullmatch(r"\d{4}-\d\d-\d\d|\d\d[/.]\d\d[/.]\d{4}|\d{1,2} [A-Z][a-z]{2} \d{4}", date)
    assert re.fullmatch(r"\d\d:\d\d", time)
    assert re.fullmatch(r"[\d,]+\.\d\d", amount)
    assert integer.isdigit() and digits.isdigit() and 4 <= len(digits) <= 10
    assert re.fullmatch(r"[A-Z]{2,3}-\d{4,8}", ident)
    assert re.fullmatch(r"[A-Z]{3} \d{4}|[A-Z]{2}-\d{3}-[A-Z]{2}", plate)
    assert literal == "{x}"


def _texts(configs: list[dict]) -> list[str]:
    mixed = MixedTexts(OcrConfig(type="ocr", texts=configs).texts)
    return [mixed.pick(i, sample_rng(0, "source", i))[0] for i in range(20)]


def test_word_and_length_ranges_and_their_old_spellings_give_the_same_texts():
    new = [{**WORDS, "words": [2, 4]}, {"kind": "charset", "charset": "AB12", "length": [3, 5]}]
    old = [{**WORDS, "min_words": 2, "max_words": 4},
           {"kind": "charset", "charset": "AB12", "min_length": 3, "max_length": 5}]
    with pytest.warns(RecipeDeprecationWarning, match="'min_words'/'max_words'.*'words: \\[2, 4\\]'"):
        assert WordsTexts.model_validate(old[0]) == WordsTexts.model_validate(new[0])
    with pytest.warns(RecipeDeprecationWarning, match="'min_length'/'max_length'"):
        assert CharsetTexts.model_validate(old[1]) == CharsetTexts.model_validate(new[1])
    assert WordsTexts.model_validate(new[0]).model_dump(mode="json")["words"] == [2, 4]
    with pytest.warns(RecipeDeprecationWarning):
        assert _texts(new) == _texts(old)
    words = [t for t in _texts(new) if not re.fullmatch("[AB12]+", t)]
    assert words and {len(t.split()) for t in words} <= {2, 3, 4}


def test_one_old_end_takes_the_other_from_the_default():
    with pytest.warns(RecipeDeprecationWarning):
        assert WordsTexts.model_validate({**WORDS, "max_words": 5}).words == (1, 5)


@pytest.mark.parametrize("data, expected", [
    ({**WORDS, "words": [4, 2]}, "words\n  Value error, the first value (4) must not exceed the second (2)"),
    ({**WORDS, "words": [0, 2]}, "words.0\n  Input should be greater than or equal to 1"),
    ({**WORDS, "words": [1, 2], "max_words": 3}, "give 'words: [lo, hi]' only"),
])
def test_range_mistakes_are_named(data, expected):
    with pytest.raises(ValidationError) as err:
        WordsTexts.model_validate(data)
    assert expected in str(err.value)
