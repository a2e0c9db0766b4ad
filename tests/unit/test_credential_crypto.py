"""AES-GCM sealing of credentials: round trip, wrong key, moved ciphertext, and the master key's forms."""

from __future__ import annotations

import base64
import hashlib

import pytest

from llmops.credentials import CredentialUnreadable, MasterKey, MasterKeyError

SECRET = "sk-upstream-0123456789abcdef"


def test_a_sealed_secret_opens_with_the_same_key_and_name() -> None:
    key = MasterKey.generate()
    nonce, ciphertext = key.seal("openai", SECRET)
    assert len(nonce) == 12
    assert SECRET.encode() not in ciphertext
    assert key.open("openai", nonce, ciphertext) == SECRET


def test_each_seal_draws_a_fresh_nonce() -> None:
    key = MasterKey.generate()
    first, second = key.seal("openai", SECRET), key.seal("openai", SECRET)
    assert first[0] != second[0]
    assert first[1] != second[1]


def test_another_key_does_not_open_it() -> None:
    nonce, ciphertext = MasterKey.generate().seal("openai", SECRET)
    with pytest.raises(CredentialUnreadable, match="does not open"):
        MasterKey.generate().open("openai", nonce, ciphertext)


def test_a_ciphertext_moved_to_another_name_does_not_open() -> None:
    key = MasterKey.generate()
    nonce, ciphertext = key.seal("openai", SECRET)
    with pytest.raises(CredentialUnreadable):
        key.open("anthropic", nonce, ciphertext)


def test_an_altered_ciphertext_does_not_open() -> None:
    key = MasterKey.generate()
    nonce, ciphertext = key.seal("openai", SECRET)
    altered = bytes([ciphertext[0] ^ 1]) + ciphertext[1:]
    with pytest.raises(CredentialUnreadable):
        key.open("openai", nonce, altered)


def test_the_key_id_is_the_first_16_hex_digits_of_its_sha256() -> None:
    raw = bytes(range(32))
    key = MasterKey.from_text(base64.b64encode(raw).decode(), "test")
    assert key.key_id == hashlib.sha256(raw).hexdigest()[:16]
    assert MasterKey.from_text(key.text(), "test") == key


def test_the_key_never_shows_in_its_repr() -> None:
    key = MasterKey.generate()
    assert key.text() not in repr(key)
    assert key.key_id in repr(key)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("not base64!", "not base64"),
        (base64.b64encode(b"short").decode(), "decodes to 5 bytes"),
    ],
)
def test_a_malformed_key_is_refused_without_echoing_it(text: str, message: str) -> None:
    with pytest.raises(MasterKeyError, match=message) as caught:
        MasterKey.from_text(text, "LLMOPS_MASTER_KEY")
    assert text not in str(caught.value)
    assert "LLMOPS_MASTER_KEY" in str(caught.value)
