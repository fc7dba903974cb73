"""Sentence splitting: English with abbreviations, Chinese with closing quotes, mixed and auto."""

from __future__ import annotations

import pytest

from bertology.data.sentences import has_cjk, split_sentences


def test_english_splits_at_sentence_ends():
    text = 'It rained. Then it stopped! Did it? "Yes," he said. "Really." 3 dogs barked.  Done'
    assert split_sentences(text, "en") == [
        "It rained.", "Then it stopped!", "Did it?", '"Yes," he said.', '"Really."', "3 dogs barked.", "Done",
    ]


def test_english_keeps_abbreviations_and_initials_together():
    text = ("Mr. Smith met Dr. Jones in the U.S. Army camp. They ate fruit, e.g. Apples, i.e. Red ones. "
            "J. R. R. Tolkien wrote it. See Fig. 3 for details. Prof. Lee agreed.")
    assert split_sentences(text, "en") == [
        "Mr. Smith met Dr. Jones in the U.S. Army camp.",
        "They ate fruit, e.g. Apples, i.e. Red ones.",
        "J. R. R. Tolkien wrote it.",
        "See Fig. 3 for details.",
        "Prof. Lee agreed.",
    ]


def test_english_needs_a_capital_or_digit_after_the_stop():
    assert split_sentences("version 2.0 is out. and more.", "en") == ["version 2.0 is out. and more."]
    assert split_sentences("Line one\nline two. Next", "en") == ["Line one\nline two.", "Next"]


def test_chinese_terminators_quotes_and_newlines():
    text = "他说：“你好。”我说：“好！”然后走了？是的；好的\n新的一行开始了。最后一句"
    assert split_sentences(text, "zh") == [
        "他说：“你好。”", "我说：“好！”", "然后走了？", "是的；", "好的", "新的一行开始了。", "最后一句",
    ]
    assert split_sentences("「走吧！」他說。『好』", "zh") == ["「走吧！」", "他說。", "『好』"]


def test_mixed_and_auto():
    text = "今天我们学习英语。He is Mr. Brown. He is a teacher.明天见！"
    assert split_sentences(text, "auto") == [
        "今天我们学习英语。", "He is Mr. Brown.", "He is a teacher.明天见！",
    ]
    assert split_sentences("From JSON. 中文句子。", "auto") == ["From JSON.", "中文句子。"]
    assert split_sentences("No Chinese here. None at all.", "auto") == ["No Chinese here.", "None at all."]
    assert has_cjk("abc中") and not has_cjk("abc。")
    assert split_sentences("", "auto") == [] and split_sentences(" \n ", "zh") == []
    with pytest.raises(ValueError, match="language"):
        split_sentences("x", "fr")
