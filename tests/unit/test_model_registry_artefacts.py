"""The artefact store over fsspec: a folder and memory://, files and folders in and out, checksums
checked on the way back, and one-line errors for a store that cannot be used."""

from __future__ import annotations

import hashlib
import uuid
from pathlib import Path

import pytest

from llmops.registry.artefacts import (
    ArtefactStore,
    ArtefactStoreError,
    ChecksumMismatch,
    digest_path,
    tree_sha256,
)
from llmops.settings import load_settings


@pytest.fixture(params=["folder", "memory"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> ArtefactStore:
    if request.param == "folder":
        return ArtefactStore(tmp_path / "store")
    return ArtefactStore(f"memory://artefacts-{uuid.uuid4().hex}")


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    root = tmp_path / "adapter"
    (root / "sub").mkdir(parents=True)
    (root / "a.json").write_text("{}")
    (root / "sub" / "b.bin").write_bytes(b"\x00" * 3000)
    return root


def test_files_and_folders_go_in_and_come_back(store: ArtefactStore, folder: Path, tmp_path: Path) -> None:
    file = tmp_path / "model.gguf"
    file.write_bytes(b"GGUF" * 1000)
    file_uri = store.put(file, "m/1/gguf-f16/model.gguf")
    folder_uri = store.put(folder, "m/1/adapter")
    assert file_uri == store.uri("m/1/gguf-f16/model.gguf")
    assert file_uri.startswith(store.root)
    assert store.exists(file_uri)
    assert store.exists(folder_uri)

    file_sha, size = digest_path(file)
    assert (file_sha, size) == (hashlib.sha256(b"GGUF" * 1000).hexdigest(), 4000)
    back = store.get(file_uri, tmp_path / "out" / "model.gguf", sha256=file_sha)
    assert back.read_bytes() == file.read_bytes()
    folder_sha, folder_size = digest_path(folder)
    assert folder_size == 3002
    copy = store.get(folder_uri, tmp_path / "out" / "adapter", sha256=folder_sha)
    assert sorted(path.relative_to(copy).as_posix() for path in copy.rglob("*") if path.is_file()) == [
        "a.json",
        "sub/b.bin",
    ]
    assert digest_path(copy)[0] == folder_sha

    store.remove(store.uri("m/1"))
    assert not store.exists(file_uri)
    assert not store.exists(folder_uri)
    store.remove(store.uri("m/1"))  # removing what is gone is no error


def test_a_folder_hash_is_its_content_not_its_location(folder: Path, tmp_path: Path) -> None:
    expected = tree_sha256(
        [
            ("sub/b.bin", hashlib.sha256(b"\x00" * 3000).hexdigest()),
            ("a.json", hashlib.sha256(b"{}").hexdigest()),
        ]
    )
    assert digest_path(folder)[0] == expected
    (folder / "sub" / "b.bin").rename(folder / "b.bin")
    assert digest_path(folder)[0] != expected  # a moved file changes the hash


def test_a_corrupt_download_is_refused_and_leaves_nothing(store: ArtefactStore, tmp_path: Path) -> None:
    file = tmp_path / "model.gguf"
    file.write_bytes(b"original bytes")
    sha, _ = digest_path(file)
    uri = store.put(file, "m/1/gguf-f16/model.gguf")
    with store.fs.open(store.fs._strip_protocol(uri), "wb") as handle:
        handle.write(b"changed bytes!")
    target = tmp_path / "cache" / "model.gguf"
    with pytest.raises(ChecksumMismatch, match="is corrupt"):
        store.get(uri, target, sha256=sha)
    assert not target.exists()
    assert list((tmp_path / "cache").iterdir()) == []  # no partial download left behind


def test_unusable_stores_and_keys_are_one_line_errors(tmp_path: Path) -> None:
    missing = ArtefactStore("s3://bucket/models")  # nothing is reached until the store is used
    assert not missing.is_local
    if _installed("s3fs"):
        pytest.skip("s3fs is installed here")
    with pytest.raises(ArtefactStoreError, match=r"needs the s3fs package: pip install s3fs"):
        missing.uri("m/1")
    with pytest.raises(ArtefactStoreError, match="cannot use the artefact store 'nosuch://x'"):
        ArtefactStore("nosuch://x").uri("m/1")
    store = ArtefactStore(tmp_path / "store")
    for key in ("", "m/../../etc", "./m"):
        with pytest.raises(ArtefactStoreError, match="invalid artefact key"):
            store.uri(key)
    with pytest.raises(ArtefactStoreError, match="is not in the artefact store"):
        store.exists((tmp_path / "elsewhere").as_uri())
    with pytest.raises(ArtefactStoreError, match="artefact missing from the store"):
        store.get(store.uri("m/9/x"), tmp_path / "x")


def test_the_setting_names_the_store(tmp_path: Path) -> None:
    default = ArtefactStore.for_settings(load_settings(home=tmp_path))
    assert default.is_local
    assert default.root == (tmp_path / "artefacts").as_uri()
    configured = ArtefactStore.for_settings(load_settings(home=tmp_path, artefact_store="memory://team"))
    assert configured.root == "memory:///team"
    assert not configured.is_local


def _installed(module: str) -> bool:
    import importlib.util

    return importlib.util.find_spec(module) is not None
