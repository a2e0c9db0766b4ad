"""The admin API's OpenAPI schema is a contract: a change must be deliberate.

After an intended change, refresh the snapshot with
``LLMOPS_UPDATE_SNAPSHOTS=1 pytest tests/unit/test_openapi_snapshot.py`` and commit it.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from llmops.server.admin import create_admin_app
from llmops.services import build_services
from llmops.settings import ModelConfig, load_settings

SNAPSHOT = Path(__file__).parent.parent / "snapshots" / "admin-openapi.json"


def test_admin_openapi_matches_snapshot(tmp_path: Path) -> None:
    settings = load_settings(
        home=tmp_path,
        database_url=f"sqlite:///{tmp_path / 'db.sqlite'}",
        models=(ModelConfig(name="e", provider="echo"),),
    )
    services = build_services(settings, open_allowed=True)
    try:
        schema = create_admin_app(services).openapi()
    finally:
        services.store.close()
    rendered = json.dumps(schema, indent=2, sort_keys=True) + "\n"
    if os.environ.get("LLMOPS_UPDATE_SNAPSHOTS") == "1":
        SNAPSHOT.write_text(rendered)
    assert SNAPSHOT.exists(), "no snapshot yet: run with LLMOPS_UPDATE_SNAPSHOTS=1"
    assert rendered == SNAPSHOT.read_text(), "the admin API changed: review, then refresh the snapshot"
