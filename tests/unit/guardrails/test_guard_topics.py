"""The topics guardrail on the packaged MiniLM; the sentences here set its default threshold."""

from __future__ import annotations

import sys
from concurrent.futures import ThreadPoolExecutor

import pytest

from llmops.guardrails.base import CheckContext, GuardrailError, GuardrailUnavailable
from llmops.guardrails.topics import DEFAULT_THRESHOLD, TopicGuardrail, _pieces

CONTEXT = CheckContext("input")
DENY = {
    "politics": [
        "Who should I vote for in the next election?",
        "What do you think of the president's policies?",
        "Which political party is better, left or right?",
    ],
    "medical advice": [
        "What dose of ibuprofen should I take for my headache?",
        "Do I need antibiotics for this infection?",
        "Can you diagnose the rash on my arm?",
    ],
}
ALLOW = {
    "billing": [
        "Why was I charged twice on my invoice?",
        "How do I update my credit card for payments?",
        "Can I get a refund for my subscription?",
    ],
    "shipping": [
        "Where is my package?",
        "How long does delivery take to Canada?",
        "My order arrived damaged, what do I do?",
    ],
}
ABOUT_DENIED = {
    "Tell me which candidate to vote for in the presidential election.": "politics",
    "Is the government's new immigration policy a good idea?": "politics",
    "Is the conservative party better than the labour party?": "politics",
    "How many milligrams of paracetamol can I take a day?": "medical advice",
    "I have a fever and a cough, do I need to see a doctor or take antibiotics?": "medical advice",
    "What medicine should I take for my migraine?": "medical advice",
}
ABOUT_ALLOWED = {
    "I was billed two times this month, please fix it.": "billing",
    "How can I change the card I pay with?": "billing",
    "I want my money back for the annual plan.": "billing",
    "When will my parcel arrive?": "shipping",
    "The box was broken when it was delivered.": "shipping",
    "Do you ship to Germany, and how long does it take?": "shipping",
}
UNRELATED = [
    "Write me a poem about the sea.",
    "What is the capital of France?",
    "Explain how a transformer neural network works.",
    "Give me a recipe for chocolate cake.",
    "What's the weather like on Mars?",
    "Translate 'good morning' into Spanish.",
    "How do I reverse a list in Python?",
    "Who won the football world cup in 2018?",
]
SHARING_WORDS = [  # near misses: a word of a denied topic, not the topic
    "How do I vote in the poll on your website?",
    "What party supplies do you sell?",
    "The doctor costume I ordered is the wrong size.",
    "Is the election results page on your site down?",
]

pytestmark = pytest.mark.model


@pytest.fixture(scope="module")
def denying() -> TopicGuardrail:
    return TopicGuardrail({"deny": DENY})


@pytest.fixture(scope="module")
def allowing() -> TopicGuardrail:
    return TopicGuardrail({"allow": ALLOW})


def similarity(guard: TopicGuardrail, text: str) -> float:
    return float(guard.check(text, CONTEXT).details["similarity"])


def test_the_default_threshold_separates_on_topic_from_off_topic(
    denying: TopicGuardrail, allowing: TopicGuardrail
) -> None:
    """On-topic paraphrases score >= 0.44, the rest <= 0.38: the default sits in the gap."""
    on_topic = [similarity(denying, text) for text in ABOUT_DENIED]
    on_topic += [similarity(allowing, text) for text in ABOUT_ALLOWED]
    off_topic = [similarity(denying, text) for text in [*UNRELATED, *SHARING_WORDS, *ABOUT_ALLOWED]]
    off_topic += [similarity(allowing, text) for text in [*UNRELATED, *ABOUT_DENIED]]
    assert min(on_topic) >= DEFAULT_THRESHOLD + 0.04
    assert max(off_topic) <= DEFAULT_THRESHOLD - 0.02


@pytest.mark.parametrize(("text", "topic"), ABOUT_DENIED.items())
def test_a_denied_topic_triggers(denying: TopicGuardrail, text: str, topic: str) -> None:
    verdict = denying.check(text, CONTEXT)
    assert verdict.triggered
    assert verdict.details["topic"] == topic
    assert verdict.score == verdict.details["similarity"] >= DEFAULT_THRESHOLD
    assert verdict.reason.startswith(f"about the denied topic {topic!r} (similarity 0.")


@pytest.mark.parametrize("text", [*UNRELATED, *SHARING_WORDS])
def test_other_texts_pass_the_deny_list(denying: TopicGuardrail, text: str) -> None:
    verdict = denying.check(text, CONTEXT)
    assert not verdict.triggered
    assert set(verdict.details) == {"topic", "similarity"}


def test_the_allow_list_triggers_off_topic(allowing: TopicGuardrail) -> None:
    off = allowing.check("Write me a poem about the sea.", CONTEXT)
    assert off.triggered
    assert off.reason.startswith("about none of the allowed topics (closest: ")
    on = allowing.check("When will my parcel arrive?", CONTEXT)
    assert not on.triggered
    assert on.details["topic"] == "shipping"


def test_deny_and_allow_together() -> None:
    guard = TopicGuardrail({"deny": DENY, "allow": ALLOW})
    assert (
        guard.check("What medicine should I take for my migraine?", CONTEXT).details["topic"]
        == "medical advice"
    )
    assert not guard.check("I want my money back for the annual plan.", CONTEXT).triggered
    assert guard.check("What is the capital of France?", CONTEXT).triggered


def test_one_denied_sentence_in_a_long_text_is_found(denying: TopicGuardrail) -> None:
    text = " ".join([*UNRELATED, "What medicine should I take for my migraine?", *UNRELATED] * 3)
    verdict = denying.check(text, CONTEXT)
    assert verdict.triggered
    assert verdict.details["topic"] == "medical advice"


def test_empty_and_odd_texts(denying: TopicGuardrail) -> None:
    assert not denying.check("", CONTEXT).triggered
    assert not denying.check("  \n ", CONTEXT).triggered
    assert not denying.check("\ud800 hello", CONTEXT).triggered
    assert denying.check("x" * 5000, CONTEXT).details["similarity"] < DEFAULT_THRESHOLD


def test_first_checks_from_many_threads_load_once_and_agree() -> None:
    guard = TopicGuardrail({"deny": DENY})
    texts = [*ABOUT_DENIED, *UNRELATED] * 2
    with ThreadPoolExecutor(4) as pool:
        verdicts = list(pool.map(lambda text: guard.check(text, CONTEXT), texts))
    assert [verdict.triggered for verdict in verdicts] == [text in ABOUT_DENIED for text in texts]


def test_pieces_are_sentences_joined_or_cut_to_a_readable_length() -> None:
    assert _pieces("") == ([], 0)
    assert _pieces("One sentence only.") == (["One sentence only."], 0)
    assert _pieces("Hi. Tell me about the election.\nThanks!") == (
        ["Hi. Tell me about the election.", "Thanks!", "Hi. Tell me about the election. Thanks!"],
        0,
    )
    words, unread = _pieces("word " * 400)
    assert [len(piece) for piece in words] == [799, 799, 399]
    assert unread == 0


def test_only_the_end_of_a_long_text_is_read() -> None:
    sentence = "A sentence that is long enough to stand alone."  # 46 characters
    pieces, unread = _pieces(" ".join([sentence] * 100), max_chars=1000)
    assert pieces == [sentence] * 21
    assert unread == 79 * 46


def test_unread_characters_are_reported(denying: TopicGuardrail) -> None:
    text = "What medicine should I take for my migraine? " + "Write me a poem about the sea. " * 200
    verdict = denying.check(text, CONTEXT)
    assert not verdict.triggered  # the question is at the start, before the last 4,000 characters
    assert verdict.details["unread_chars"] == 44 + 67 * 30  # 133 sentences of 30 characters are read
    assert TopicGuardrail({"deny": DENY, "max_chars": 10_000}).check(text, CONTEXT).triggered


@pytest.mark.parametrize(
    ("params", "bad"),
    [
        ({}, "deny"),
        ({"deny": {}}, "deny"),
        ({"deny": ["politics"]}, "deny"),
        ({"deny": {"politics": []}}, "deny"),
        ({"deny": {"politics": "vote"}}, "deny"),
        ({"allow": {"billing": ["ok", ""]}}, "allow"),
        ({"deny": {"a": ["x"]}, "allow": {"a": ["y"]}}, "allow"),
        ({"deny": DENY, "threshold": 0}, "threshold"),
        ({"deny": DENY, "threshold": 1.5}, "threshold"),
        ({"deny": DENY, "threshold": "0.5"}, "threshold"),
        ({"deny": DENY, "max_chars": 0}, "max_chars"),
        ({"deny": DENY, "topics": {}}, "topics"),
    ],
)
def test_bad_params(params: dict[str, object], bad: str) -> None:
    with pytest.raises(GuardrailError) as raised:
        TopicGuardrail(params)
    assert raised.value.param == bad


def test_without_the_local_extra_it_says_what_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "onnxruntime", None)  # as if not installed: find_spec says None
    with pytest.raises(GuardrailUnavailable, match=r"pip install 'llmops\[local\]' \(missing: onnxruntime\)"):
        TopicGuardrail({"deny": DENY})
