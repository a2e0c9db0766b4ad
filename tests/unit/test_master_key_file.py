"""Where the master key comes from: the environment setting, else a 0600 key file created on first need."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from llmops.credentials import MasterKey, MasterKeyError, MasterKeySource, key_source
from llmops.credentials.keyfile import read_key_file, write_key_file
from llmops.settings import load_settings


def test_a_key_file_is_created_with_mode_0600_on_first_need(tmp_path: Path) -> None:
    source = MasterKeySource(None, tmp_path / "home" / "master.key")
    assert source.load() is None
    assert not source.path.exists()
    key = source.load_or_create()
    assert stat.S_IMODE(source.path.stat().st_mode) == 0o600
    assert source.load() == key
    assert source.load_or_create() == key  # created once
    assert [path.name for path in source.path.parent.iterdir()] == ["master.key"]  # no temporary left


def test_a_key_file_open_to_others_is_refused_with_the_fix(tmp_path: Path) -> None:
    path = tmp_path / "master.key"
    write_key_file(path, MasterKey.generate())
    path.chmod(0o640)
    with pytest.raises(MasterKeyError) as caught:
        read_key_file(path)
    message = str(caught.value)
    assert f"chmod 600 {path}" in message
    assert "\n" not in message
    path.chmod(0o600)
    assert read_key_file(path).key_id


def test_writing_never_replaces_an_existing_key_file(tmp_path: Path) -> None:
    path = tmp_path / "master.key"
    first = MasterKey.generate()
    write_key_file(path, first)
    with pytest.raises(FileExistsError):
        write_key_file(path, MasterKey.generate())
    assert read_key_file(path) == first


def test_the_environment_key_wins_over_the_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    file_key, env_key = MasterKey.generate(), MasterKey.generate()
    write_key_file(tmp_path / "master.key", file_key)
    monkeypatch.setenv("LLMOPS_MASTER_KEY", env_key.text())
    source = key_source(load_settings(home=tmp_path))
    assert source.from_environment
    assert source.load() == env_key
    assert env_key.text() not in repr(source)


def test_the_key_file_setting_moves_it(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("LLMOPS_MASTER_KEY", raising=False)
    elsewhere = tmp_path / "secrets" / "llmops.key"
    monkeypatch.setenv("LLMOPS_MASTER_KEY_FILE", str(elsewhere))
    source = key_source(load_settings(home=tmp_path / "home"))
    assert source.path == elsewhere
    source.load_or_create()
    assert elsewhere.exists()
    assert os.listdir(tmp_path) == ["secrets"]


def test_the_settings_never_print_the_key(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    key = MasterKey.generate()
    monkeypatch.setenv("LLMOPS_MASTER_KEY", key.text())
    settings = load_settings(home=tmp_path)
    assert key.text() not in repr(settings)
    assert key.text() not in str(settings.model_dump())
