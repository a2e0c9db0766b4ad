"""Settings: argument > LLMOPS_* environment > llmops.yaml > default, and one-line errors."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from llmops.settings import DeploymentConfig, ModelConfig, Settings, SettingsError, load_settings


@pytest.fixture(autouse=True)
def _isolated(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """No real ~/.llmops, ./llmops.yaml or LLMOPS_* variable reaches these tests."""
    for name in list(os.environ):
        if name.upper().startswith("LLMOPS_"):
            monkeypatch.delenv(name)
    home = tmp_path / "home"
    home.mkdir()
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.setenv("LLMOPS_HOME", str(home))
    monkeypatch.chdir(work)
    return work


def _write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


def _one_line(exc: pytest.ExceptionInfo[SettingsError]) -> str:
    message = str(exc.value)
    assert message
    assert "\n" not in message
    return message


def test_defaults_without_any_config() -> None:
    settings = load_settings()
    assert settings.port == 4000
    assert settings.host == "127.0.0.1"
    assert settings.models == ()
    assert settings.config is None
    assert settings.home == Path(os.environ["LLMOPS_HOME"])
    assert settings.resolved_database_url == f"sqlite:///{settings.home / 'llmops.db'}"


def test_precedence_argument_over_env_over_file_over_default(monkeypatch: pytest.MonkeyPatch) -> None:
    assert load_settings().port == 4000
    _write(Path("llmops.yaml"), "port: 5000\nhost: 0.0.0.0\n")
    assert load_settings().port == 5000
    monkeypatch.setenv("LLMOPS_PORT", "6000")
    settings = load_settings()
    assert settings.port == 6000
    assert settings.host == "0.0.0.0"  # still from the file
    assert load_settings(port=7000).port == 7000
    assert load_settings(port=None).port == 6000  # None means "not given"


def test_file_in_cwd_wins_over_home(tmp_path: Path) -> None:
    _write(tmp_path / "home" / "llmops.yaml", "port: 1111\nlog_level: debug\n")
    assert load_settings().port == 1111
    _write(Path("llmops.yaml"), "port: 2222\n")
    settings = load_settings()
    assert settings.port == 2222
    assert settings.log_level == "info"  # the home file is not merged in
    assert settings.config == Path.cwd() / "llmops.yaml"


def test_config_from_env_and_argument(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    _write(Path("llmops.yaml"), "port: 2222\n")
    other = _write(tmp_path / "other.yaml", "port: 3333\n")
    third = _write(tmp_path / "third.yaml", "port: 4444\n")
    monkeypatch.setenv("LLMOPS_CONFIG", str(other))
    assert load_settings().port == 3333
    settings = load_settings(config_file=third)
    assert settings.port == 4444
    assert settings.config == third


def test_models_parsed_from_yaml() -> None:
    _write(
        Path("llmops.yaml"),
        """
models:
  - name: fast
    provider: echo
  - name: gpt
    provider: openai
    model: gpt-4o-mini
    base_url: https://api.example.com/v1
    api_key_env: EXAMPLE_KEY
    input_price_per_1m: 0.15
    output_price_per_1m: 0.6
    params:
      timeout_seconds: 30
""",
    )
    models = load_settings().models
    assert [model.name for model in models] == ["fast", "gpt"]
    fast, gpt = models
    assert isinstance(gpt, ModelConfig)
    assert fast.provider == "echo"
    assert fast.upstream_model == "fast"
    assert gpt.upstream_model == "gpt-4o-mini"
    assert gpt.base_url == "https://api.example.com/v1"
    [deployment] = gpt.deployments
    assert deployment.id == "gpt"
    assert deployment.api_key_env == "EXAMPLE_KEY"
    assert deployment.input_price_per_1m == pytest.approx(0.15)
    assert deployment.params == {}  # the earlier spelling of a total time limit...
    assert deployment.timeouts.total == 30  # ...becomes timeouts.total


def test_duplicate_model_names() -> None:
    _write(
        Path("llmops.yaml"),
        "models:\n  - {name: a, provider: echo}\n  - {name: a, provider: openai}\n",
    )
    with pytest.raises(SettingsError) as exc:
        load_settings()
    message = _one_line(exc)
    assert "'a'" in message
    assert "twice" in message
    assert "llmops.yaml" in message


@pytest.mark.parametrize(
    ("text", "where"),
    [
        ("colour: blue\n", "colour"),
        ("models:\n  - {name: a, provider: echo, bogus: 1}\n", "models.0.bogus"),
    ],
)
def test_unknown_keys(text: str, where: str) -> None:
    _write(Path("llmops.yaml"), text)
    with pytest.raises(SettingsError) as exc:
        load_settings()
    message = _one_line(exc)
    assert where in message
    assert "llmops.yaml" in message


def test_invalid_value_in_file() -> None:
    _write(Path("llmops.yaml"), "port: 70000\nlog_level: loud\n")
    with pytest.raises(SettingsError) as exc:
        load_settings()
    message = _one_line(exc)
    assert "llmops.yaml" in message
    assert "(and 1 more)" in message


def test_invalid_env_value_blames_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    _write(Path("llmops.yaml"), "host: 0.0.0.0\n")
    monkeypatch.setenv("LLMOPS_PORT", "not-a-number")
    with pytest.raises(SettingsError) as exc:
        load_settings()
    message = _one_line(exc)
    assert "port" in message
    assert "LLMOPS_PORT" in message
    assert "llmops.yaml" not in message


def test_invalid_argument_blames_the_arguments(monkeypatch: pytest.MonkeyPatch) -> None:
    _write(Path("llmops.yaml"), "port: 5000\n")
    monkeypatch.setenv("LLMOPS_PORT", "6000")
    with pytest.raises(SettingsError) as exc:
        load_settings(port=-1)
    message = _one_line(exc)
    assert message.startswith("invalid setting port in the arguments:")


@pytest.mark.parametrize("text", ["models: [\n", "port: 1\n  host: x\n", "a: b: c\n"])
def test_bad_yaml(text: str) -> None:
    _write(Path("llmops.yaml"), text)
    with pytest.raises(SettingsError) as exc:
        load_settings()
    message = _one_line(exc)
    assert message.startswith("cannot read ")
    assert "llmops.yaml" in message


def test_top_level_not_a_mapping() -> None:
    _write(Path("llmops.yaml"), "- port\n- 4000\n")
    with pytest.raises(SettingsError) as exc:
        load_settings()
    assert "mapping" in _one_line(exc)


def test_empty_file_means_defaults() -> None:
    _write(Path("llmops.yaml"), "")
    assert load_settings().port == 4000


def test_missing_explicit_config_file(tmp_path: Path) -> None:
    missing = tmp_path / "nope.yaml"
    with pytest.raises(SettingsError) as exc:
        load_settings(config_file=missing)
    message = _one_line(exc)
    assert "not found" in message
    assert str(missing) in message


def test_missing_config_file_from_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("LLMOPS_CONFIG", str(tmp_path / "gone.yaml"))
    with pytest.raises(SettingsError) as exc:
        load_settings()
    assert "gone.yaml" in _one_line(exc)


def test_home_and_database_url(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("LLMOPS_HOME")  # else the environment wins over the file
    _write(Path("llmops.yaml"), f"home: {tmp_path / 'data'}\n")
    settings = load_settings()
    assert settings.home == tmp_path / "data"
    assert settings.resolved_database_url == f"sqlite:///{tmp_path / 'data' / 'llmops.db'}"
    monkeypatch.setenv("LLMOPS_DATABASE_URL", "postgresql://u@h/db")
    assert load_settings().resolved_database_url == "postgresql://u@h/db"


def test_boolean_and_float_from_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LLMOPS_TRACE_CONTENT", "false")
    monkeypatch.setenv("LLMOPS_TRACE_FLUSH_SECONDS", "0.5")
    settings = load_settings()
    assert settings.trace_content is False
    assert settings.trace_flush_seconds == 0.5


def test_model_cost() -> None:
    model = DeploymentConfig(name="m", provider="echo", input_price_per_1m=2.0, output_price_per_1m=8.0)
    assert model.cost(0, 0) == 0.0
    assert model.cost(1_000_000, 0) == pytest.approx(2.0)
    assert model.cost(1000, 500) == pytest.approx((1000 * 2.0 + 500 * 8.0) / 1e6)
    assert DeploymentConfig(name="free", provider="echo").cost(10_000, 10_000) == 0.0


def test_model_api_key_reads_named_env(monkeypatch: pytest.MonkeyPatch) -> None:
    model = DeploymentConfig(name="m", provider="openai", api_key_env="MY_UPSTREAM_KEY")
    monkeypatch.delenv("MY_UPSTREAM_KEY", raising=False)
    assert model.api_key() is None
    monkeypatch.setenv("MY_UPSTREAM_KEY", "sk-first")
    assert model.api_key() == "sk-first"
    monkeypatch.setenv("MY_UPSTREAM_KEY", "sk-rotated")
    assert model.api_key() == "sk-rotated"  # read when needed, not stored
    assert DeploymentConfig(name="m", provider="echo").api_key() is None


def test_model_config_rejects_bad_values() -> None:
    with pytest.raises(ValueError, match="extra"):
        ModelConfig(name="m", provider="echo", colour="red")  # type: ignore[call-arg]
    with pytest.raises(ValueError, match="greater than or equal"):
        ModelConfig(name="m", provider="echo", input_price_per_1m=-1)
    with pytest.raises(ValueError, match="at least 1 character"):
        ModelConfig(name="", provider="echo")


def test_settings_direct_construction_is_validated() -> None:
    with pytest.raises(ValueError, match="declared twice"):
        Settings(models=(ModelConfig(name="x", provider="echo"), ModelConfig(name="x", provider="echo")))
