"""Stored credentials on SQLite and Postgres: set, list, reveal, delete, rotate all-or-nothing, audit."""

from __future__ import annotations

import json
import stat
from pathlib import Path

import orjson
import pytest
from sqlalchemy import Engine, select, update

from llmops.audit import Actor, AuditService, cli_actor
from llmops.credentials import (
    CredentialInUse,
    CredentialNotFound,
    CredentialService,
    CredentialUnreadable,
    InvalidCredential,
    MasterKey,
    MasterKeyError,
    MasterKeySource,
    rotate_master_key,
)
from llmops.credentials.keyfile import read_key_file, write_key_file
from llmops.credentials.tables import credentials
from llmops.gateway.catalog import ModelCatalog
from llmops.model_config import ModelConfig
from llmops.providers.base import ProviderContext
from llmops.providers.registry import ProviderConfigError, ProviderRegistry
from llmops.settings import Settings

SECRET = "sk-upstream-first-0123456789"
OTHER = "sk-upstream-second-9876543210"
ACTOR = Actor(name="ops", source="api", key_id="key_1", ip="127.0.0.1")


def _service(db: Engine, home: Path, used_by: dict[str, list[str]] | None = None) -> CredentialService:
    return CredentialService(
        db, MasterKeySource(None, home / "master.key"), AuditService(db), used_by=lambda: used_by or {}
    )


def _rows(db: Engine) -> list[tuple[str, bytes, bytes, str]]:
    with db.connect() as connection:
        query = select(
            credentials.c.name, credentials.c.nonce, credentials.c.ciphertext, credentials.c.key_id
        )
        return [
            (name, bytes(nonce), bytes(text), key_id)
            for name, nonce, text, key_id in connection.execute(query)
        ]


def test_set_list_reveal_replace_and_delete(db: Engine, tmp_path: Path) -> None:
    service = _service(db, tmp_path)
    first = service.set("openai", SECRET, ACTOR)
    key = read_key_file(tmp_path / "master.key")  # created on first need
    assert first.key_id == key.key_id
    assert stat.S_IMODE((tmp_path / "master.key").stat().st_mode) == 0o600
    assert service.reveal("openai") == SECRET
    assert SECRET.encode() not in b"".join(row[2] for row in _rows(db))

    replaced = service.set("openai", OTHER, cli_actor())
    assert replaced.created_at == first.created_at
    assert replaced.updated_at >= first.updated_at
    service.set("azure.eu-1", SECRET, ACTOR)
    assert [info.name for info in service.list()] == ["azure.eu-1", "openai"]
    assert service.reveal_many(["openai", "azure.eu-1", "missing"]) == {"openai": OTHER, "azure.eu-1": SECRET}

    deleted = service.delete("azure.eu-1", ACTOR)
    assert deleted.name == "azure.eu-1"
    with pytest.raises(CredentialNotFound):
        service.reveal("azure.eu-1")
    with pytest.raises(CredentialNotFound):
        service.delete("azure.eu-1", ACTOR)

    events = list(reversed(AuditService(db).list().items))
    assert [(e["action"], e["target"], e["actor"]) for e in events] == [
        ("set_credential", "openai", "ops"),
        ("set_credential", "openai", cli_actor().name),
        ("set_credential", "azure.eu-1", "ops"),
        ("delete_credential", "azure.eu-1", "ops"),
    ]
    assert events[0]["before"] is None
    assert events[0]["after"] == {"name": "openai", "key_id": key.key_id}
    assert events[1]["before"] == {"name": "openai", "key_id": key.key_id}
    assert events[3]["before"] == {"name": "azure.eu-1", "key_id": key.key_id}
    dumped = json.dumps(events, default=str)
    assert SECRET not in dumped
    assert OTHER not in dumped


@pytest.mark.parametrize(
    ("name", "secret", "param"),
    [
        ("", SECRET, "name"),
        ("-leading", SECRET, "name"),
        ("with/slash", SECRET, "name"),
        ("x" * 201, SECRET, "name"),
        ("ok", "   ", "secret"),
        ("ok", "two\nlines", "secret"),
        ("ok", "x" * 16_385, "secret"),
        ("ok", "sk-\ud800-lone-surrogate", "secret"),
    ],
)
def test_bad_names_and_secrets_are_refused(tmp_path: Path, name: str, secret: str, param: str) -> None:
    from llmops.store import open_database

    engine = open_database(f"sqlite:///{tmp_path / 'db.sqlite'}")
    try:
        with pytest.raises(InvalidCredential) as caught:
            _service(engine, tmp_path).set(name, secret, ACTOR)
    finally:
        engine.dispose()
    assert caught.value.param == param
    assert secret.strip() == "" or secret not in str(caught.value)
    assert not (tmp_path / "master.key").exists()  # nothing was sealed


def test_a_credential_in_use_is_not_deleted(db: Engine, tmp_path: Path) -> None:
    service = _service(db, tmp_path, used_by={"openai": ["gpt-4o"]})
    service.set("openai", SECRET, ACTOR)
    with pytest.raises(CredentialInUse, match="gpt-4o"):
        service.delete("openai", ACTOR)
    assert service.reveal("openai") == SECRET


def test_rotation_reseals_everything_and_keeps_the_old_key_file(db: Engine, tmp_path: Path) -> None:
    service = _service(db, tmp_path)
    service.set("openai", SECRET, ACTOR)
    service.set("other", OTHER, ACTOR)
    old = read_key_file(tmp_path / "master.key")
    before = _rows(db)

    done = rotate_master_key(service, cli_actor())
    assert (done.old_key_id, done.count, done.key_file) == (old.key_id, 2, tmp_path / "master.key")
    assert done.backup is not None
    assert read_key_file(done.backup) == old
    new = read_key_file(tmp_path / "master.key")
    assert new == done.new_key != old
    assert not (tmp_path / "master.key.new").exists()
    after = _rows(db)
    assert {row[3] for row in after} == {new.key_id}
    assert all(b[1] != a[1] and b[2] != a[2] for b, a in zip(before, after, strict=True))  # fresh nonces
    fresh = _service(db, tmp_path)  # another process, reading the new key file
    assert fresh.reveal_many(["openai", "other"]) == {"openai": SECRET, "other": OTHER}
    event = AuditService(db).list(action="rotate_master_key").items[0]
    assert event["before"] == {"key_id": old.key_id}
    assert event["after"] == {"key_id": new.key_id, "count": 2}


def test_rotation_changes_nothing_when_a_row_does_not_open(db: Engine, tmp_path: Path) -> None:
    service = _service(db, tmp_path)
    service.set("good", SECRET, ACTOR)
    service.set("stranger", OTHER, ACTOR)
    stray = MasterKey.generate()
    nonce, ciphertext = stray.seal("stranger", OTHER)
    with db.begin() as connection:  # a row sealed by a key this server does not have
        connection.execute(
            update(credentials)
            .where(credentials.c.name == "stranger")
            .values(nonce=nonce, ciphertext=ciphertext, key_id=stray.key_id)
        )
    key_file = (tmp_path / "master.key").read_bytes()
    before = _rows(db)
    with pytest.raises(CredentialUnreadable, match="stranger"):
        rotate_master_key(service, cli_actor())
    assert _rows(db) == before
    assert (tmp_path / "master.key").read_bytes() == key_file
    assert sorted(path.name for path in tmp_path.iterdir() if path.name.startswith("master")) == [
        "master.key"
    ]
    assert service.reveal("good") == SECRET
    assert AuditService(db).list(action="rotate_master_key").items == []


def test_rotation_with_the_environment_key_hands_the_new_key_back(db: Engine, tmp_path: Path) -> None:
    env_key = MasterKey.generate()
    service = CredentialService(
        db, MasterKeySource(env_key.text(), tmp_path / "unused.key"), AuditService(db)
    )
    service.set("openai", SECRET, ACTOR)
    done = rotate_master_key(service, cli_actor())
    assert done.key_file is None
    assert done.old_key_id == env_key.key_id
    assert not (tmp_path / "unused.key").exists()
    rekeyed = CredentialService(db, MasterKeySource(done.new_key.text(), tmp_path / "x"), AuditService(db))
    assert rekeyed.reveal("openai") == SECRET
    with pytest.raises(CredentialUnreadable, match="sealed with master key"):
        CredentialService(db, MasterKeySource(env_key.text(), tmp_path / "x"), AuditService(db)).reveal(
            "openai"
        )


def test_a_lost_key_is_never_replaced_by_a_new_one(db: Engine, tmp_path: Path) -> None:
    service = _service(db, tmp_path)
    service.set("openai", SECRET, ACTOR)
    (tmp_path / "master.key").unlink()
    with pytest.raises(MasterKeyError, match="no master key"):
        service.set("another", OTHER, ACTOR)
    with pytest.raises(MasterKeyError, match="no master key"):
        service.reveal("openai")
    assert not (tmp_path / "master.key").exists()


def test_a_catalog_decrypts_the_credentials_its_models_name(db: Engine, tmp_path: Path) -> None:
    service = _service(db, tmp_path)
    service.set("upstream", SECRET, ACTOR)
    model = ModelConfig.model_validate(
        {
            "name": "gpt",
            "provider": "openai",
            "base_url": "http://127.0.0.1:9/v1",
            "api_key_credential": "upstream",
        }
    )
    settings = Settings(home=tmp_path)
    context = ProviderContext(settings=settings, credentials=service.reveal_many)
    catalog = ModelCatalog.build((model,), ProviderRegistry(load_plugins=False), context)
    route = catalog.get("gpt")
    assert route is not None
    assert route.deployments[0].config.api_key() == SECRET
    shown = catalog.listing_body + orjson.dumps(route.status()) + repr(route.deployments[0].config).encode()
    assert SECRET.encode() not in shown

    missing = model.model_copy(
        update={"deployments": (model.deployments[0].model_copy(update={"api_key_credential": "nope"}),)}
    )
    with pytest.raises(ProviderConfigError, match="no stored credential named 'nope'"):
        ModelCatalog.build((missing,), ProviderRegistry(load_plugins=False), context)
    with pytest.raises(ProviderConfigError, match="credential store"):
        ModelCatalog.build((model,), ProviderRegistry(load_plugins=False), ProviderContext(settings=settings))
    write_key_file(tmp_path / "other.key", MasterKey.generate())
    wrong = CredentialService(db, MasterKeySource(None, tmp_path / "other.key"), AuditService(db))
    with pytest.raises(ProviderConfigError, match="sealed with master key"):
        ModelCatalog.build(
            (model,),
            ProviderRegistry(load_plugins=False),
            ProviderContext(settings=settings, credentials=wrong.reveal_many),
        )


def test_a_change_and_its_audit_event_commit_together(db: Engine, tmp_path: Path) -> None:
    service = _service(db, tmp_path)
    service.set("openai", SECRET, ACTOR)
    too_long = Actor(name="x" * 300, source="cli")  # cut to the column's width, so it still records
    service.set("other", OTHER, too_long)
    assert AuditService(db).list(target="other").items[0]["actor"] == "x" * 200
    with db.begin() as connection:
        connection.exec_driver_sql("DROP TABLE audit_event")  # recording now fails
    with pytest.raises(Exception, match="audit_event"):
        service.set("third", SECRET, ACTOR)
    with pytest.raises(Exception, match="audit_event"):
        service.delete("openai", ACTOR)
    assert [info.name for info in service.list()] == ["openai", "other"]  # neither change was made


def test_a_deployment_takes_its_key_from_the_environment_or_a_credential_not_both() -> None:
    with pytest.raises(ValueError, match="either api_key_env or api_key_credential"):
        ModelConfig.model_validate(
            {"name": "m", "provider": "openai", "api_key_env": "KEY", "api_key_credential": "openai"}
        )
    deployment = ModelConfig.model_validate(
        {"name": "m", "provider": "openai", "api_key_credential": "openai"}
    ).deployments[0]
    assert deployment.api_key() is None  # not resolved until a catalog is built
    resolved = deployment.with_credential(SECRET)
    assert resolved.api_key() == SECRET
    assert resolved.model_copy(update={"weight": 2.0}).api_key() == SECRET  # kept by later copies
    assert SECRET not in repr(resolved) + str(resolved.model_dump()) + resolved.model_dump_json()
