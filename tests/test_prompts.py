"""Prompt templates: the built-in ones render, a user's folder overrides them and is re-read on an
edit, unknown fields are refused at load, nothing in a template or a value is ever evaluated, and
``pokedreamer prompts init|show|list`` work as a user runs them."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from clirun import cli

from pokedreamer.errors import UserError
from pokedreamer.planner.prompts import (
    FIELDS,
    MISSING,
    PromptError,
    PromptLibrary,
    default_templates,
    field_text,
    init_prompts_dir,
)
from pokedreamer.planner.subgoals import MAX_SUBGOALS, Plan

ALL_FIELDS = {
    "schema": '{"title": "Plan"}',
    "state_summary": "Location: PALLET_TOWN (map $00) at x=6, y=2",
    "dialog": "GUIDE: Hello, RED!",
    "recent_outcomes": ["done: go to PALLET_TOWN", "timed out: read text 'GUIDE'"],
    "trigger": "new dialog",
    "goal": "Get a POKéMON from the GUIDE",
}


def write(path: Path, text: str) -> None:
    """Writes and moves the modification time on, so that a rewrite within one clock tick of the
    last one is still seen as an edit."""
    before = path.stat().st_mtime_ns if path.exists() else 0
    path.write_text(text, encoding="utf-8")
    stamp = max(path.stat().st_mtime_ns, before + 1_000_000_000)
    os.utime(path, ns=(stamp, stamp))


# --- the built-in templates ---------------------------------------------------------------------


def test_the_defaults_render_every_field() -> None:
    library = PromptLibrary()
    assert library.names() == ["system", "user"]
    system = library.render("system", **ALL_FIELDS)
    assert system.rstrip().endswith('{"title": "Plan"}')
    assert f"at most {MAX_SUBGOALS} subgoals" in system
    assert "pret" in system and "JSON" in system
    user = library.render("user", **ALL_FIELDS)
    for name in ("state_summary", "dialog", "trigger", "goal"):
        assert str(ALL_FIELDS[name]) in user
    assert "done: go to PALLET_TOWN\ntimed out: read text 'GUIDE'" in user
    assert "{{" not in system + user


def test_the_defaults_use_the_fields_they_should() -> None:
    library = PromptLibrary()
    assert library.template("system").fields == {"schema"}
    assert library.template("user").fields == set(FIELDS) - {"schema"}
    for name, source in library.sources().items():
        assert Path(source).name == f"{name}.txt" and Path(source).parent.name == "prompts"
        assert library.template(name).builtin


def test_a_missing_or_blank_value_renders_as_none() -> None:
    user = PromptLibrary().render("user", trigger="start", dialog="", recent_outcomes=[])
    assert "Why you are asked now: start" in user
    assert user.count(MISSING) == 4  # goal, state_summary, dialog, recent_outcomes
    assert field_text("   ") == MISSING and field_text(None) == MISSING
    assert field_text(3) == "3" and field_text(["a", "b"]) == "a\nb"
    with pytest.raises(TypeError):
        field_text(object())  # type: ignore[arg-type]


def test_unknown_names_are_refused() -> None:
    library = PromptLibrary()
    with pytest.raises(PromptError, match="no prompt template 'repair'; there are: system, user"):
        library.render("repair")
    with pytest.raises(PromptError, match="bad template name"):
        library.render("../system")
    with pytest.raises(TypeError, match="unknown prompt field"):
        library.render("user", state="PALLET_TOWN")  # type: ignore[arg-type]


# --- a user's prompts folder --------------------------------------------------------------------


def test_a_user_folder_overrides_by_file_name_and_may_add(tmp_path: Path) -> None:
    write(tmp_path / "system.txt", "You plan. Schema: {{ schema }}\n")
    write(tmp_path / "repair.txt", "That was not valid: {{dialog}}\n")
    write(tmp_path / "notes.md", "not a template")
    library = PromptLibrary(tmp_path)
    assert library.names() == ["repair", "system", "user"]
    assert library.render("system", schema="S") == "You plan. Schema: S\n"
    assert library.render("repair") == f"That was not valid: {MISSING}\n"
    assert "Game state:" in library.render("user")  # still the built-in one
    sources = library.sources()
    assert sources["system"] == str(tmp_path / "system.txt")
    assert sources["repair"] == str(tmp_path / "repair.txt")
    assert not library.template("system").builtin and library.template("user").builtin


def test_an_edit_applies_to_the_next_render(tmp_path: Path) -> None:
    path = tmp_path / "user.txt"
    write(path, "first: {{goal}}")
    library = PromptLibrary(str(tmp_path))
    assert library.render("user", goal="G") == "first: G"
    write(path, "second: {{goal}} / {{trigger}}")
    assert library.render("user", goal="G", trigger="T") == "second: G / T"
    # Deleting it falls back to the built-in template; writing it again takes it back.
    path.unlink()
    assert "Game state:" in library.render("user", goal="G")
    write(path, "third")
    assert library.render("user") == "third"
    # An unchanged file is not read again.
    template = library.template("user")
    assert library.template("user") is template


def test_an_unknown_field_names_the_file_line_and_field(tmp_path: Path) -> None:
    write(tmp_path / "user.txt", "State:\n{{state_summary}}\nTeam: {{party}}\n")
    with pytest.raises(PromptError) as info:
        PromptLibrary(tmp_path)
    message = str(info.value)
    assert message.startswith(f"{tmp_path / 'user.txt'}:3: unknown field {{{{party}}}}")
    assert "{{state_summary}}" in message  # the known fields are listed
    assert isinstance(info.value, UserError) and "\n" not in message


def test_a_broken_edit_is_refused_when_next_rendered(tmp_path: Path) -> None:
    path = tmp_path / "system.txt"
    write(path, "{{schema}}")
    library = PromptLibrary(tmp_path)
    write(path, "{{schema}} {{scheme}}")
    with pytest.raises(PromptError, match=r"system.txt:1: unknown field \{\{scheme\}\}"):
        library.render("system", schema="S")
    write(path, "{{schema}}!")
    assert library.render("system", schema="S") == "S!"


def test_a_missing_folder_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(PromptError, match="prompts folder not found"):
        PromptLibrary(tmp_path / "nowhere")


# --- nothing is ever evaluated ------------------------------------------------------------------


@pytest.mark.parametrize(
    "slot",
    ["{{__class__}}", "{{ goal.__class__ }}", "{{goal.__init__.__globals__}}", "{{goal[0]}}",
     "{{ goal | upper }}", "{{self}}", "{{}}"],
)  # fmt: skip
def test_a_slot_that_is_not_a_field_is_refused(tmp_path: Path, slot: str) -> None:
    write(tmp_path / "user.txt", f"Hello {slot}")
    with pytest.raises(PromptError, match="unknown field"):
        PromptLibrary(tmp_path)


def test_format_syntax_and_values_are_left_as_they_are(tmp_path: Path) -> None:
    text = "{0.__init__} {goal} {goal!r:>10} { {goal} } %(goal)s ${goal} {{goal}}"
    write(tmp_path / "user.txt", text)
    library = PromptLibrary(tmp_path)
    assert library.render("user", goal="G") == text.replace("{{goal}}", "G")
    # A value holding slots or format fields is text: substitution is one pass.
    sneaky = "{{schema}} {0.__class__} {{__class__}}"
    assert library.render("user", goal=sneaky) == text.replace("{{goal}}", sneaky)
    assert library.render("system", schema=sneaky).endswith(sneaky + "\n")


# --- copying the defaults -----------------------------------------------------------------------


def test_init_copies_the_defaults_and_refuses_to_overwrite(tmp_path: Path) -> None:
    target = tmp_path / "a" / "prompts"
    written = init_prompts_dir(target)
    assert sorted(p.name for p in written) == ["system.txt", "user.txt"]
    for name, text in default_templates().items():
        assert (target / f"{name}.txt").read_text(encoding="utf-8") == text
    write(target / "user.txt", "mine")
    with pytest.raises(PromptError, match="already exist.*--force"):
        init_prompts_dir(target)
    assert (target / "user.txt").read_text() == "mine"
    init_prompts_dir(target, force=True)
    assert (target / "user.txt").read_text() == default_templates()["user"]


# --- the command --------------------------------------------------------------------------------


def test_cli_init_then_refuses_without_force(isolated: Path) -> None:
    result = cli("prompts", "init")
    assert result.returncode == 0, result.stderr
    target = isolated / "prompts"
    assert sorted(p.name for p in target.iterdir()) == ["system.txt", "user.txt"]
    assert f"wrote {Path('prompts') / 'system.txt'}" in result.stdout
    assert "[planner]" in result.stdout
    assert f"prompts_dir = {json.dumps(str(target.resolve()))}" in result.stdout
    assert "POKEDREAMER_PLANNER__PROMPTS_DIR" in result.stdout

    (target / "system.txt").write_text("mine {{schema}}", encoding="utf-8")
    again = cli("prompts", "init")
    assert again.returncode == 2 and again.stdout == ""
    assert again.stderr.startswith("error: ") and again.stderr.count("\n") == 1
    assert "already exist" in again.stderr and "--force" in again.stderr
    assert (target / "system.txt").read_text() == "mine {{schema}}"

    forced = cli("prompts", "init", "--force")
    assert forced.returncode == 0, forced.stderr
    assert (target / "system.txt").read_text() == default_templates()["system"]


def test_cli_init_into_the_configured_folder(
    isolated: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("POKEDREAMER_PLANNER__PROMPTS_DIR", "my_prompts")
    result = cli("prompts", "init")
    assert result.returncode == 0, result.stderr
    assert (isolated / "my_prompts" / "user.txt").is_file()
    assert "points here already" in result.stdout
    other = cli("prompts", "init", "elsewhere")
    assert other.returncode == 0 and (isolated / "elsewhere" / "system.txt").is_file()
    assert "[planner]" in other.stdout


def test_cli_show_renders_against_the_fixture_start() -> None:
    user = cli("prompts", "show", "user", "--state", "fixture-start")
    assert user.returncode == 0, user.stderr
    assert "Location: REDS_HOUSE_1F (map $25) at x=3, y=5, facing down" in user.stdout
    assert "Party: none" in user.stdout
    assert "Why you are asked now: start" in user.stdout
    assert f"Current goal: {MISSING}" in user.stdout
    system = cli("prompts", "show", "system")
    assert system.returncode == 0, system.stderr
    schema = json.loads(system.stdout.strip().splitlines()[-1])
    assert schema == json.loads(json.dumps(Plan.model_json_schema()))


def test_cli_show_uses_the_users_folder_and_names_errors(
    isolated: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (isolated / "mine").mkdir()
    (isolated / "mine" / "user.txt").write_text("At {{state_summary}}", encoding="utf-8")
    monkeypatch.setenv("POKEDREAMER_PLANNER__PROMPTS_DIR", "mine")
    shown = cli("prompts", "show", "user")
    assert shown.returncode == 0, shown.stderr
    assert shown.stdout.startswith("At Location: REDS_HOUSE_1F")
    listed = cli("prompts", "list")
    assert listed.returncode == 0, listed.stderr
    lines = dict(line.split(maxsplit=1) for line in listed.stdout.splitlines())
    assert lines["user"].startswith("yours") and lines["system"].startswith("built-in")

    unknown = cli("prompts", "show", "repair")
    assert unknown.returncode == 2
    assert unknown.stderr == "error: no prompt template 'repair'; there are: system, user\n"
    (isolated / "mine" / "user.txt").write_text("{{__class__}}", encoding="utf-8")
    bad = cli("prompts", "show", "user")
    assert bad.returncode == 2 and "unknown field {{__class__}}" in bad.stderr
    assert "Traceback" not in bad.stderr
