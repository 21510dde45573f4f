"""Settings resolution: defaults < config file < POKEDREAMER_* env vars < CLI overrides."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest
from pydantic import BaseModel

from pokedreamer.config import PLANNER_KINDS, EnvSettings, PlannerSettings, Settings, load_settings
from pokedreamer.errors import UserError

REPO_ROOT = Path(__file__).resolve().parent.parent


def write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


def user_error(config_path: Path | None = None, overrides: dict | None = None) -> str:
    with pytest.raises(UserError) as info:
        load_settings(config_path, overrides or {})
    message = str(info.value)
    assert "\n" not in message
    return message


def test_defaults_without_any_file() -> None:
    settings = load_settings(None, {})
    assert settings == Settings()
    assert settings.env.action_repeat == 24
    assert settings.env.hold_frames == 8
    assert settings.env.headless is True
    assert settings.run.runs_dir == "runs"
    assert settings.planner.kind == "heuristic"
    assert settings.planner.api_key is None
    assert settings.log.level == "INFO"


def test_precedence_defaults_file_env_overrides(monkeypatch: pytest.MonkeyPatch) -> None:
    write(
        Path("config.toml"),
        "[env]\naction_repeat = 12\nhold_frames = 4\nseed = 1\n[run]\nsteps = 10\n",
    )
    monkeypatch.setenv("POKEDREAMER_ENV__ACTION_REPEAT", "20")
    monkeypatch.setenv("POKEDREAMER_ENV__SEED", "2")
    settings = load_settings(None, {"env.seed": 3})
    assert settings.env.action_repeat == 20  # env beats file
    assert settings.env.hold_frames == 4  # file beats default
    assert settings.env.seed == 3  # override beats env
    assert settings.run.steps == 10  # file, untouched by the others
    assert settings.run.print_every == 100  # default


def test_override_of_none_means_not_given() -> None:
    write(Path("config.toml"), "[run]\nsteps = 10\n")
    assert load_settings(None, {"run.steps": None}).run.steps == 10


def test_override_merges_into_a_section_rather_than_replacing_it() -> None:
    write(Path("config.toml"), "[env]\naction_repeat = 12\n")
    settings = load_settings(None, {"env.rom": "red.gb"})
    assert settings.env.rom == "red.gb"
    assert settings.env.action_repeat == 12


def test_env_var_nesting_and_case(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("POKEDREAMER_ENV__ACTION_REPEAT", "12")
    monkeypatch.setenv("POKEDREAMER_ENV__HEADLESS", "false")
    monkeypatch.setenv("POKEDREAMER_PLANNER__KIND", "llm")
    monkeypatch.setenv("POKEDREAMER_LOG__LEVEL", "debug")
    settings = load_settings(None, {})
    assert settings.env.action_repeat == 12
    assert settings.env.headless is False
    assert settings.planner.kind == "llm"
    assert settings.log.level == "DEBUG"


def test_default_file_is_config_toml_in_working_directory() -> None:
    write(Path("config.toml"), "[env]\nseed = 1\n")
    assert load_settings(None, {}).env.seed == 1


def test_explicit_config_picks_another_file(tmp_path: Path) -> None:
    write(Path("config.toml"), "[env]\nseed = 1\n")
    other = write(tmp_path / "other.toml", "[env]\nseed = 5\n")
    assert load_settings(other, {}).env.seed == 5


def test_missing_explicit_config_is_a_user_error() -> None:
    message = user_error(Path("nowhere.toml"))
    assert message == "config file not found: nowhere.toml"


def test_malformed_toml_names_file_and_position() -> None:
    write(Path("config.toml"), "[env]\nseed = = 3\n")
    message = user_error()
    assert message.startswith("config.toml: line 2, column ")
    assert "Invalid value" in message


def test_bad_value_names_file_dotted_key_and_value() -> None:
    write(Path("config.toml"), "[planner]\ntimeout_s = -1\n")
    assert user_error() == "config.toml: planner.timeout_s: Input should be greater than 0 (got -1)"


def test_several_bad_values_share_one_line() -> None:
    write(Path("config.toml"), '[planner]\ntimeout_s = 0\nkind = "gpt"\n[env]\nseed = "x"\n')
    parts = user_error().split("; ")
    assert len(parts) == 3
    assert parts[0].startswith("config.toml: env.seed: Input should be a valid integer")
    assert parts[1].startswith("config.toml: planner.kind: Input should be 'heuristic'")
    assert parts[1].endswith('(got "gpt")')
    assert parts[2].startswith("config.toml: planner.timeout_s: ")


@pytest.mark.parametrize(
    ("text", "dotted"),
    [
        ("[env]\naction_repeats = 12\n", "env.action_repeats"),
        ("[enviroment]\nseed = 1\n", "enviroment"),
        ("seed = 1\n", "seed"),
    ],
)
def test_unknown_keys_are_rejected(text: str, dotted: str) -> None:
    write(Path("config.toml"), text)
    assert user_error().startswith(f"config.toml: {dotted}: unknown key")


def test_hold_frames_cannot_exceed_action_repeat() -> None:
    write(Path("config.toml"), "[env]\naction_repeat = 4\nhold_frames = 8\n")
    assert user_error() == "config.toml: env: hold_frames (8) must not exceed action_repeat (4)"


def test_bad_env_var_is_named(monkeypatch: pytest.MonkeyPatch) -> None:
    write(Path("config.toml"), "[planner]\ntimeout_s = 5\n")
    monkeypatch.setenv("POKEDREAMER_PLANNER__TIMEOUT_S", "-2")
    assert user_error() == (
        "environment variable POKEDREAMER_PLANNER__TIMEOUT_S: planner.timeout_s: "
        'Input should be greater than 0 (got "-2")'
    )


def test_bad_override_is_attributed_to_command_line() -> None:
    message = user_error(overrides={"run.steps": -1})
    assert message == "command line: run.steps: Input should be greater than or equal to 0 (got -1)"


def test_openai_api_key_is_a_fallback_and_never_shown(monkeypatch: pytest.MonkeyPatch) -> None:
    secret = "sk-test-do-not-print-4242"
    monkeypatch.setenv("OPENAI_API_KEY", secret)
    settings = load_settings(None, {})
    assert settings.planner.api_key is not None
    assert settings.planner.api_key.get_secret_value() == secret
    for shown in (repr(settings), str(settings), settings.to_toml(), repr(settings.planner)):
        assert secret not in shown


def test_explicit_api_key_beats_openai_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-from-openai-var")
    monkeypatch.setenv("POKEDREAMER_PLANNER__API_KEY", "sk-from-our-var")
    settings = load_settings(None, {})
    assert settings.planner.api_key is not None
    assert settings.planner.api_key.get_secret_value() == "sk-from-our-var"
    assert "sk-from-our-var" not in settings.to_toml()


def test_secret_is_not_echoed_in_errors(monkeypatch: pytest.MonkeyPatch) -> None:
    write(Path("config.toml"), "[planner]\napi_key = 12345\n")
    message = user_error()
    assert message.startswith("config.toml: planner.api_key: ")
    assert "12345" not in message


def test_openai_base_url_fills_an_empty_base_url(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_BASE_URL", "http://127.0.0.1:8000/v1")
    write(Path("config.toml"), '[planner]\nbase_url = ""\n')
    assert load_settings(None, {}).planner.base_url == "http://127.0.0.1:8000/v1"
    write(Path("config.toml"), '[planner]\nbase_url = "http://127.0.0.1:9000/v1"\n')
    assert load_settings(None, {}).planner.base_url == "http://127.0.0.1:9000/v1"


def test_to_toml_loads_back_to_equal_settings(tmp_path: Path) -> None:
    settings = load_settings(
        None,
        {
            "env.rom": 'roms/red "v1" é\\x.gb',
            "env.headless": False,
            "env.action_repeat": 12,
            "planner.timeout_s": 2.5,
            "planner.kind": "none",
            "run.name": "first",
            "log.level": "warning",
        },
    )
    saved = write(tmp_path / "saved.toml", settings.to_toml())
    assert load_settings(saved, {}) == settings


def test_shipped_config_equals_defaults() -> None:
    assert load_settings(REPO_ROOT / "config.toml", {}) == Settings()


def test_every_setting_is_in_shipped_config_with_a_comment_above() -> None:
    lines = (REPO_ROOT / "config.toml").read_text(encoding="utf-8").splitlines()
    tomllib.loads("\n".join(lines))  # it parses at all
    section = ""
    seen: dict[str, str] = {}  # dotted key -> the line above it
    for above, line in zip(["", *lines], lines, strict=False):
        if line.startswith("["):
            section = line.strip("[]")
            continue
        # Secrets are shipped commented out, so they are never filled in by accident.
        key_part = line.removeprefix("# ")
        if " = " in key_part and key_part.split(" = ")[0].isidentifier():
            seen[f"{section}.{key_part.split(' = ')[0]}"] = above
    for section_name, info in Settings.model_fields.items():
        assert info.description, f"{section_name} has no docstring"
        section_model = info.annotation
        assert isinstance(section_model, type) and issubclass(section_model, BaseModel)
        for field_name, field in section_model.model_fields.items():
            dotted = f"{section_name}.{field_name}"
            assert field.description, f"{dotted} has no docstring"
            assert dotted in seen, f"{dotted} is missing from config.toml"
            assert seen[dotted].startswith("# "), f"{dotted} has no comment above it"
            assert not seen[dotted].removeprefix("# ").startswith(f"{field_name} =")


def test_actions_are_the_buttons_then_noop() -> None:
    assert EnvSettings().num_actions == 8 == len(EnvSettings().action_names)
    env = EnvSettings(buttons=["up", "a"], noop=True)
    assert env.action_names == ["up", "a", "noop"]
    assert env.num_actions == 3


def test_planner_kinds_are_the_settings_choices() -> None:
    assert set(PLANNER_KINDS) == {"heuristic", "llm", "local", "none"}
    for kind in PLANNER_KINDS:
        assert PlannerSettings(kind=kind).kind == kind


def test_return_norm_percentiles_load_from_toml_and_env(monkeypatch: pytest.MonkeyPatch) -> None:
    write(Path("config.toml"), "[agent]\nreturn_norm_percentiles = [10, 90]\n")
    assert load_settings(None, {}).agent.return_norm_percentiles == (10.0, 90.0)
    monkeypatch.setenv("POKEDREAMER_AGENT__RETURN_NORM_PERCENTILES", "[1, 99]")
    assert load_settings(None, {}).agent.return_norm_percentiles == (1.0, 99.0)
    write(Path("config.toml"), "[agent]\nreturn_norm_percentiles = [90, 10]\n")
    monkeypatch.delenv("POKEDREAMER_AGENT__RETURN_NORM_PERCENTILES")
    assert user_error().startswith(
        "config.toml: agent.return_norm_percentiles: must be (low, high)"
    )
