"""The secrets guardrail: each credential format, exact spans, look-alikes left alone, parameters, speed."""

from __future__ import annotations

import time

import pytest

from llmops.gateway.keys import SECRET_PREFIX
from llmops.guardrails.base import CheckContext, GuardrailError
from llmops.guardrails.secrets import KINDS, LLMOPS_KEY_PREFIX, SecretsGuardrail

CONTEXT = CheckContext(stage="input")
GUARD = SecretsGuardrail({})

AWS_ID = "AKIAIOSFODNN7EXAMPLE"
AWS_SECRET = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"
GITHUB = "ghp_" + "R8x2kLm9Qz4vTn7pWc1Ys5Hd3Fj6Gb0Na8Ue"
GITHUB_FINE = "github_pat_11ABCDEFG0abcdefghij_" + "KLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789AB"
OPENAI = "sk-proj-" + "Xk29fLmQ8zR4vTn7pWc1Ys5Hd3Fj6Gb0Na8UeKo2Lr9Mt4"
ANTHROPIC = "sk-ant-api03-" + "Zq8Lm2Xk9fR4vTn7pWc1Ys5Hd3Fj6Gb0Na8UeKo2Lr9Mt4_wQ"
SLACK = "xoxb-1234567890-1234567890123-" + "AbCdEfGhIjKlMnOpQrStUvWx"
WEBHOOK = "https://hooks.slack.com/services/T00000000/B00000000/XXXXXXXXXXXXXXXXXXXXXXXX"
STRIPE = "sk_live_" + "4eC39HqLyjWDarjtT1zdp7dc"
GOOGLE = "AIzaSyA-1234567890abcdefghijklmnopqrstu"
JWT = (
    "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0."
    "dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U"
)
PEM = (
    "-----BEGIN RSA PRIVATE KEY-----\nMIIEowIBAAKCAQEA0Z3VS5JJcds3\nxfn/ygWyF8PbnGy0AHB7MhgHcTz6\n"
    "-----END RSA PRIVATE KEY-----"
)


def spans(text: str, guard: SecretsGuardrail = GUARD) -> list[tuple[str, str]]:
    """(kind, the text of the span) for every finding."""
    return [(f.kind, text[f.start : f.end]) for f in guard.check(text, CONTEXT).findings]


@pytest.mark.parametrize(
    ("kind", "secret"),
    [
        ("aws_access_key", AWS_ID),
        ("aws_access_key", "ASIAY34FZKBOKMUTVV7A"),
        ("github_token", GITHUB),
        ("github_token", "gho_" + "a1B2c3D4e5F6g7H8i9J0k1L2m3N4o5P6q7R8"),
        ("github_token", GITHUB_FINE),
        ("openai_key", OPENAI),
        ("openai_key", "sk-" + "T3BlbkFJ4vTn7pWc1Ys5Hd3Fj6Gb0Na8UeKo2Lr9Mt4wQzX7"),
        ("anthropic_key", ANTHROPIC),
        ("slack_token", SLACK),
        ("slack_webhook", WEBHOOK),
        ("stripe_key", STRIPE),
        ("stripe_key", "rk_live_" + "51H8xYzAbCdEfGhIjKlMnOp"),
        ("google_api_key", GOOGLE),
        ("jwt", JWT),
        ("private_key", PEM),
        ("llmops_key", SECRET_PREFIX + "4Dat2Wkylv6YGEmQMnU2wOxdRDebpUI0HXVZmqVRBY0"),
    ],
)
def test_each_format_is_found_with_its_exact_span(kind: str, secret: str) -> None:
    text = f"Here it is: {secret} -- please keep it safe."
    verdict = GUARD.check(text, CONTEXT)
    assert verdict.triggered
    assert verdict.score == 1.0
    assert spans(text) == [(kind, secret)]
    assert verdict.details == {"kinds": [kind]}
    assert secret not in verdict.reason


def test_the_llmops_prefix_is_the_gateways() -> None:
    assert LLMOPS_KEY_PREFIX == SECRET_PREFIX


def test_aws_secret_key_needs_its_hint_and_only_the_value_is_the_span() -> None:
    text = f'aws_secret_access_key = "{AWS_SECRET}"'
    assert spans(text) == [("aws_secret_key", AWS_SECRET)]
    assert spans(f"checksum {AWS_SECRET} of the file") == []


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("password=Xk9#mP2$vL7q", "Xk9#mP2$vL7q"),
        ('api_key: "a8f5f167f44f4964e6c998dee827110c"', "a8f5f167f44f4964e6c998dee827110c"),
        ("export DB_PASSWORD='Zr7!qL2@wX9#'", "Zr7!qL2@wX9#"),
        ("my token is 4f9a8b7c6d5e3f2a", "4f9a8b7c6d5e3f2a"),
        ("Authorization: Bearer abcdef0123456789abcdef", "abcdef0123456789abcdef"),
        ("client_secret => kQ8vZ2mX7pL4nR9t", "kQ8vZ2mX7pL4nR9t"),
    ],
)
def test_generic_assignment_with_a_random_value_is_found(text: str, value: str) -> None:
    assert spans(text) == [("generic_secret", value)]


@pytest.mark.parametrize(
    "text",
    [
        "password = hunter2",  # too short to tell
        "password: correcthorsebatterystaple",  # a word, not random
        "api_key = os.environ['API_KEY']",
        "token: Authentication",
        "SECRET_KEY = settings.SECRET_KEY",
        "password=<your-password-here>",
        "api_key=YOUR_API_KEY",
        "password: ********",
        "max_tokens=4096 and the key: value pairs",
        "password is incorrect, please try again",
        "The secret to good bread is patience.",
    ],
)
def test_generic_rule_leaves_placeholders_words_and_code_alone(text: str) -> None:
    assert spans(text) == []


@pytest.mark.parametrize(
    "text",
    [
        "What is the difference between sk-learn and scikit-learn?",
        "The sk-this-is-not-a-real-key-just-hyphenated-words example",
        "The AKIA prefix marks an AWS access key id.",
        "Tokens that start with ghp_ are GitHub personal access tokens.",
        "An eyJ prefix usually means base64 of JSON.",
        "-----BEGIN PUBLIC KEY-----\nMIIBIjANBgkqhkiG9w0BAQEFAAOCAQ8A\n-----END PUBLIC KEY-----",
        "Use https://hooks.slack.com/ for incoming webhooks.",
        "Please summarise the meeting notes: roadmap, hiring, launch in May.",
        "",
    ],
)
def test_look_alikes_and_clean_text_pass(text: str) -> None:
    verdict = GUARD.check(text, CONTEXT)
    assert not verdict.triggered
    assert verdict.findings == ()


def test_several_secrets_in_order_with_a_reason_naming_kinds_only() -> None:
    text = f"first {GITHUB}\nthen\n{PEM}\nand password={'Qw3$rT7!yU9#'}"
    verdict = GUARD.check(text, CONTEXT)
    assert [kind for kind, _ in spans(text)] == ["github_token", "private_key", "generic_secret"]
    assert verdict.reason == "3 secrets: github_token, private_key, generic_secret"
    assert verdict.details == {"kinds": ["github_token", "private_key", "generic_secret"]}


def test_a_known_format_wins_over_the_generic_rule() -> None:
    text = f"OPENAI_API_KEY={OPENAI}"
    assert spans(text) == [("openai_key", OPENAI)]


def test_private_key_without_end_stops_where_its_lines_stop() -> None:
    key = "-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjEAAAAABG5vbmU\nAAAAAAABAAAAMwAAAAtzc2gtZW"
    text = key + "\n\nCan you tell me why ssh rejects it?"
    assert spans(text) == [("private_key", key)]


def test_redacting_the_spans_leaves_no_secret() -> None:
    text = f"key {AWS_ID} and {STRIPE}, password=Xk9#mP2$vL7q ok"
    verdict = GUARD.check(text, CONTEXT)
    redacted = text
    for finding in sorted(verdict.findings, key=lambda f: f.start, reverse=True):
        redacted = redacted[: finding.start] + f"[{finding.kind}]" + redacted[finding.end :]
    assert redacted == "key [aws_access_key] and [stripe_key], password=[generic_secret] ok"


def test_kinds_restricts_the_check() -> None:
    guard = SecretsGuardrail({"kinds": ["jwt"]})
    assert spans(f"{AWS_ID} {JWT}", guard) == [("jwt", JWT)]


def test_entropy_threshold_is_a_parameter() -> None:
    text = "password=changeme123"
    assert spans(text) == [("generic_secret", "changeme123")]
    assert spans(text, SecretsGuardrail({"entropy_threshold": 3.5})) == []


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"kinds": ["github_token", "bitcoin_wallet"]}, "'bitcoin_wallet' (known: aws_access_key"),
        ({"kinds": []}, "non-empty list"),
        ({"kinds": "jwt"}, "'kinds' must be a list"),
        ({"entropy_threshold": 12}, "between 0 and 8"),
        ({"entropy_threshold": True}, "'entropy_threshold' must be a int or float"),
        ({"kind": ["jwt"]}, "has no parameter 'kind'"),
    ],
)
def test_bad_parameters_are_named(params: dict[str, object], message: str) -> None:
    with pytest.raises(GuardrailError, match="^[^\n]+$") as error:
        SecretsGuardrail(params)
    assert message in str(error.value)
    assert error.value.param == next(iter(params))


def test_every_kind_is_known() -> None:
    assert set(KINDS) >= {"aws_access_key", "private_key", "generic_secret", "llmops_key"}
    assert SecretsGuardrail({"kinds": list(KINDS)}).kinds == frozenset(KINDS)


@pytest.mark.parametrize(
    "text",
    [
        "-----BEGIN RSA PRIVATE KEY-----\n" * 5_000,
        "password=" + "a" * 100_000,
        "sk-" * 50_000,
        "AKIA" * 50_000,
        "eyJ" + "a" * 50_000 + "." * 1000,
        "token: " + "x1" * 50_000,
    ],
)
def test_adversarial_inputs_stay_fast(text: str) -> None:
    started = time.perf_counter()
    GUARD.check(text, CONTEXT)
    assert time.perf_counter() - started < 1.0


def test_a_clean_prompt_costs_microseconds() -> None:
    prompt = (
        "Please summarise the following meeting notes for the team: we discussed the roadmap for the "
        "next quarter, agreed to hire two engineers and moved the launch to May. Keep it short."
    )
    runs = 2_000
    started = time.perf_counter()
    for _ in range(runs):
        GUARD.check(prompt, CONTEXT)
    assert (time.perf_counter() - started) / runs < 100e-6  # ~6 µs measured; generous for busy CI
