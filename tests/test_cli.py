"""The pokedreamer command: verbs, exit codes, one-line errors, and fast startup."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import types
from pathlib import Path

import pytest
from clirun import cli

import pokedreamer
from pokedreamer.agent.play import SHIPPED_CHECKPOINT, SHIPPED_PRESET
from pokedreamer.cli import FLAG_TO_SETTING, main
from pokedreamer.config import Settings, load_settings
from pokedreamer.errors import UserError
from pokedreamer.world_model.checkpoint import load_checkpoint

REPO_ROOT = Path(__file__).resolve().parent.parent
VERBS = ["run", "play", "collect", "train", "eval", "replay", "export", "bench", "prompts", "ram"]
HEAVY = ["torch", "pyboy", "numpy", "textual", "openai"]


def call_main(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    with pytest.raises(SystemExit) as info:
        main(list(args))
    out, err = capsys.readouterr()
    code = info.value.code
    return (code if isinstance(code, int) else 0), out, err


def test_help_lists_every_verb() -> None:
    result = cli("--help")
    assert result.returncode == 0, result.stderr
    commands = result.stdout.split("Commands:")[1].split()
    for verb in VERBS:
        assert verb in commands


def test_version() -> None:
    result = cli("--version")
    assert result.returncode == 0
    assert result.stdout == f"pokedreamer {pokedreamer.__version__}\n"
    assert pokedreamer.__version__ == "0.1.0"


def test_bench_env_json_reports_ratio_and_processes() -> None:
    import json

    result = cli("bench", "env", "--json", "--steps", "50", "--rounds", "1", "--processes", "1",
                 "--seconds", "0.5")  # fmt: skip
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["raw_pyboy_steps_per_s"] > 0 and report["env_steps_per_s"] > 0
    assert report["env_over_raw"] == pytest.approx(
        report["env_steps_per_s"] / report["raw_pyboy_steps_per_s"], rel=1e-2
    )
    assert set(report["processes_steps_per_s"]) == {"1"}


def test_missing_config_file_is_one_line_exit_2() -> None:
    result = cli("--config", "nowhere.toml", "run")
    assert result.returncode == 2
    assert result.stderr == "error: config file not found: nowhere.toml\n"


def test_malformed_toml_is_one_line_exit_2(tmp_path: Path) -> None:
    (tmp_path / "broken.toml").write_text("[env\nseed = 1\n", encoding="utf-8")
    result = cli("--config", "broken.toml", "run")
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    lines = result.stderr.splitlines()
    assert len(lines) == 1
    assert lines[0].startswith("error: broken.toml: line 1, column ")


def test_bad_value_is_one_line_naming_file_and_key(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    (tmp_path / "config.toml").write_text("[env]\naction_repeat = 0\n", encoding="utf-8")
    code, _, err = call_main(capsys, "run")
    assert code == 2
    assert err == (
        "error: config.toml: env.action_repeat: "
        "Input should be greater than or equal to 1 (got 0)\n"
    )


def test_bad_flag_value_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = call_main(capsys, "run", "--planner", "gpt")
    assert code == 2
    assert "--planner" in err


def test_flags_map_onto_real_settings() -> None:
    for dotted in FLAG_TO_SETTING.values():
        section, field = dotted.split(".")
        section_model = Settings.model_fields[section].annotation
        assert section_model is not None
        assert field in section_model.model_fields, dotted


@pytest.fixture
def fake_demo(monkeypatch: pytest.MonkeyPatch) -> list[Settings]:
    """Stand in for pokedreamer.agent.play so the run verb's wiring is tested on its own."""
    received: list[Settings] = []
    fake_play(monkeypatch, lambda settings, **_: received.append(settings))
    return received


def fake_play(monkeypatch: pytest.MonkeyPatch, start_loop: object) -> None:
    module = types.ModuleType("pokedreamer.agent.play")
    module.start_loop = start_loop  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "pokedreamer.agent.play", module)


def test_run_passes_flags_over_file_and_env(
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    fake_demo: list[Settings],
) -> None:
    (tmp_path / "config.toml").write_text(
        '[env]\nseed = 4\naction_repeat = 12\n[run]\nsteps = 100\n[planner]\nkind = "llm"\n',
        encoding="utf-8",
    )
    monkeypatch.setenv("POKEDREAMER_RUN__STEPS", "50")
    code, _, err = call_main(
        capsys, "run", "--rom", "red.gb", "--no-headless", "--steps", "5", "--planner", "none"
    )
    assert code == 0, err
    [settings] = fake_demo
    assert settings.env.rom == "red.gb"
    assert settings.env.headless is False
    assert settings.run.steps == 5
    assert settings.planner.kind == "none"
    assert settings.env.seed == 4  # no --seed: the file's value stands
    assert settings.env.action_repeat == 12


def test_run_reads_the_config_named_by_the_global_option(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, fake_demo: list[Settings]
) -> None:
    (tmp_path / "config.toml").write_text("[env]\nseed = 1\n", encoding="utf-8")
    (tmp_path / "other.toml").write_text("[env]\nseed = 2\n", encoding="utf-8")
    code, _, _ = call_main(capsys, "--config", "other.toml", "run", "--headless")
    assert code == 0
    assert fake_demo[0].env.seed == 2
    assert fake_demo[0].env.headless is True


def test_user_error_from_a_verb_is_one_line_exit_2(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    def refuse(settings: Settings, **_: object) -> None:
        raise UserError("not a Game Boy ROM: red.gb")

    fake_play(monkeypatch, refuse)
    code, out, err = call_main(capsys, "run", "--rom", "red.gb")
    assert (code, out, err) == (2, "", "error: not a Game Boy ROM: red.gb\n")


def test_ctrl_c_exits_130_quietly(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    def interrupted(settings: Settings, **_: object) -> None:
        raise KeyboardInterrupt

    fake_play(monkeypatch, interrupted)
    code, out, err = call_main(capsys, "run")
    assert code == 130
    assert "Traceback" not in out + err


def test_cli_import_and_help_stay_light() -> None:
    script = (
        "import sys\n"
        "import pokedreamer.cli\n"
        "try:\n"
        "    pokedreamer.cli.main(['--help'])\n"
        "except SystemExit:\n"
        "    pass\n"
        f"print(','.join(sorted(m for m in {HEAVY!r} if m in sys.modules)), file=sys.stderr)\n"
    )
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(REPO_ROOT), env.get("PYTHONPATH", "")])
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, env=env, timeout=60
    )
    assert result.returncode == 0, result.stderr
    assert result.stderr.strip() == "", f"imported at startup: {result.stderr.strip()}"


def test_run_plays_the_fixture_cartridge() -> None:
    result = cli("run", "--headless", "--steps", "3")
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr


def test_run_starts_the_shipped_agent_unless_another_preset_is_asked_for(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """On the fixture, run plays the shipped (tiny) checkpoint; --preset mini (or the variable)
    asks for a new mini model, not the shipped one under another name."""

    def preset_of(run: str) -> str:
        _, meta = load_checkpoint(Path(f"runs/{run}/checkpoints/agent-000000002"))
        return str(meta["preset"]["name"])

    shipped = cli("run", "--headless", "--steps", "2", "--name", "s")
    assert shipped.returncode == 0, shipped.stderr
    assert "tiny world model" in shipped.stdout and "shipped/fixture-agent" in shipped.stderr
    mini = cli("run", "--headless", "--steps", "2", "--name", "m", "--preset", "mini")
    assert mini.returncode == 0, mini.stderr
    assert "mini world model at update 0" in mini.stdout and "shipped" not in mini.stderr
    assert (preset_of("s"), preset_of("m")) == ("tiny", "mini")
    monkeypatch.setenv("POKEDREAMER_WORLD_MODEL__PRESET", "tiny")  # the shipped one's
    tiny = cli("run", "--headless", "--steps", "2", "--name", "t")
    assert "shipped/fixture-agent" in tiny.stderr, tiny.stderr


def test_the_shipped_preset_is_the_shipped_checkpoints() -> None:
    _, meta = load_checkpoint(SHIPPED_CHECKPOINT)
    assert meta["preset"]["name"] == SHIPPED_PRESET


def test_run_with_a_missing_rom_is_one_line_exit_2(tmp_path: Path) -> None:
    result = cli("run", "--headless", "--steps", "3", "--rom", str(tmp_path / "missing.gb"))
    assert result.returncode == 2
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ")


def test_envs_is_a_flag_of_the_one_table(
    capsys: pytest.CaptureFixture[str], fake_demo: list[Settings]
) -> None:
    assert FLAG_TO_SETTING["envs"] == "agent.envs"
    code, _, err = call_main(capsys, "run", "--envs", "3")
    assert code == 0, err
    assert fake_demo[0].agent.envs == 3


def elsewhere(tmp_path: Path) -> tuple[Path, Path]:
    """A config file whose runs live in a folder that is not ./runs. With --config, the verbs
    that work on a run read this file rather than the run's own config.toml, so it names the
    preset the run is trained with too."""
    runs = tmp_path / "elsewhere"
    config = tmp_path / "my.toml"
    config.write_text(
        f'[run]\nruns_dir = {json.dumps(str(runs))}\n[world_model]\npreset = "tiny"\n',
        encoding="utf-8",
    )
    return config, runs


def test_the_config_files_runs_dir_decides_where_world_model_verbs_work(tmp_path: Path) -> None:
    config, runs = elsewhere(tmp_path)
    steps = ("--steps", "300", "--envs", "1")
    result = cli("--config", str(config), "collect", "--run", "c", *steps)
    assert result.returncode == 0, result.stderr
    assert any((runs / "c" / "replay").iterdir())
    assert load_settings(runs / "c" / "config.toml", {}).agent.envs == 1

    result = cli("--config", str(config), "train", "world-model", "--run", "c", "--updates", "1")
    assert result.returncode == 0, result.stderr
    assert [p.name for p in (runs / "c" / "checkpoints").glob("*.json")] == ["wm-000000001.json"]

    result = cli("--config", str(config), "eval", "world-model", "--run", "c", "--sequences", "2",
                 "--context", "2", "--horizon", "3")  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert (runs / "c" / "eval" / "wm-000000001" / "c-n2-c2-h3" / "openloop.json").is_file()
    assert not (tmp_path / "runs").exists()


def test_the_config_files_runs_dir_decides_where_imitation_works(tmp_path: Path) -> None:
    config, runs = elsewhere(tmp_path)
    result = cli("--config", str(config), "train", "imitation", "--run", "dagger", "--steps", "4",
                 "--envs", "1")  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert list((runs / "dagger" / "checkpoints").glob("agent-*.json"))
    assert load_settings(runs / "dagger" / "config.toml", {}).agent.envs == 1
    assert not (tmp_path / "runs").exists()


def test_eval_agent_scores_30_fresh_seeds_by_default_and_says_which_seeds_training_uses() -> None:
    result = cli("eval", "agent", "--help")
    assert result.returncode == 0, result.stderr
    text = " ".join(result.stdout.split())
    assert "Seeded episodes per variant. [default: 30; x>=1]" in text
    assert "[default: 10000]" in text
    assert "training (runs start at env.seed, 0 by default" in text
    assert "(the README's recipe chose on 100-119)" in text
