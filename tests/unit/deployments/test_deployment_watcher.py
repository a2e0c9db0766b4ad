"""The watcher rebuilds a server's models when the deployment rows change, and retries a failed rebuild."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from llmops.gateway.reload import ReloadError
from llmops.services import Services, build_services
from llmops.settings import load_settings


@pytest.fixture
async def services(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[Services]:
    monkeypatch.chdir(tmp_path)  # no llmops.yaml around
    settings = load_settings(
        home=tmp_path,
        database_url=f"sqlite:///{tmp_path / 'llmops.db'}",
        models=[{"name": "echo", "provider": "echo"}],
    )
    built = build_services(settings, open_allowed=True, reload=lambda: settings)
    built.deployment_watcher.follow(built.reloader)
    yield built
    await built.reloader.aclose()
    await built.catalog.aclose()
    built.store.close()


async def test_a_change_is_applied_once(services: Services) -> None:
    watcher, store = services.deployment_watcher, services.store
    assert await watcher.check() is False  # built at the current rows already
    store.registry.register("support-model", serving={"provider": "echo"})
    store.deployments.deploy("support-model@1", name="support")
    assert await watcher.check() is True
    route = services.catalog.get("support")
    assert route is not None
    assert [deployment.id for deployment in route.deployments] == ["support-model@1"]
    assert services.catalog.get("support-model@1") is not None
    assert watcher.traffic == {("support", "support-model@1"): 100.0}
    assert await watcher.check() is False


async def test_a_failed_rebuild_is_tried_again(services: Services, tmp_path: Path) -> None:
    watcher, store = services.deployment_watcher, services.store
    missing = {"provider": "local", "params": {"model_path": str(tmp_path / "gone.gguf")}}
    store.registry.register("broken", serving=missing)
    store.deployments.deploy("broken@1", name="support")
    with pytest.raises(ReloadError, match="is not a file"):
        await watcher.check()
    with pytest.raises(ReloadError, match="is not a file"):  # still not applied: tried again
        await watcher.check()
    assert services.catalog.get("support") is None  # the running models stayed
    store.deployments.undeploy("support")
    assert await watcher.check() is True
    assert services.catalog.get("echo") is not None
