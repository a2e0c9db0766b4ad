"""Offline token counting never fails on what a user may send."""

from __future__ import annotations

from llmops.providers.tokens import TokenCounter


def test_special_token_text_counts_as_ordinary_text() -> None:
    # the tokenizer refuses "<|endoftext|>" in text by default: a prompt holding it failed the request
    counter = TokenCounter()
    assert counter.count("say <|endoftext|> now") > counter.count("say now")


def test_lone_surrogates_are_counted() -> None:
    assert TokenCounter().count("broken \ud800 text") >= 3
