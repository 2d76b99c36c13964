"""The docs tied to the code: the generated command reference is current, every D-Bus
method, signal and property is in docs/dbus-api.md, every configuration key is in
docs/config.example.toml, every command the README names exists with the options it
shows, and no page says "not yet" of what ships."""

from __future__ import annotations

import ast
import re
import shlex
from pathlib import Path

import pytest

from tokenstation.daemon import config
from tokenstation.daemon.cli import build_parser, reference
from tokenstation.daemon.cli.commands import COMMANDS

ROOT = Path(__file__).resolve().parents[2]
README = ROOT / "README.md"
DOCS = ROOT / "docs"


@pytest.mark.parametrize("relative", sorted(reference.TARGETS))
def test_generated_reference_is_current(relative: str) -> None:
    """The man page and docs/cli.md are what the parsers say now."""
    fresh = reference.TARGETS[relative](reference.commands())
    committed = (ROOT / relative).read_text()
    assert committed == fresh, (
        f"{relative} is out of date: run .venv/bin/python -m tokenstation.daemon.cli.reference"
    )


def test_every_command_in_man_page_and_reference() -> None:
    man = (ROOT / "debian" / "tokenstation.1").read_text()
    cli = (DOCS / "cli.md").read_text()
    for name in COMMANDS:
        assert f".SS {name.replace('-', chr(92) + '-')}" in man, name
        assert f"## `{name}`" in cli, name


def _interface_members() -> dict[str, list[str]]:
    """Methods, signals and properties declared in daemon/bus/interface.py."""
    tree = ast.parse((ROOT / "daemon" / "bus" / "interface.py").read_text())
    found: dict[str, list[str]] = {"method": [], "signal": [], "dbus_property": []}
    for node in ast.walk(tree):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            for deco in node.decorator_list:
                call = deco.func if isinstance(deco, ast.Call) else deco
                if isinstance(call, ast.Name) and call.id in found:
                    found[call.id].append(node.name)
    return found


def test_every_bus_member_documented() -> None:
    members = _interface_members()
    assert members["method"] and members["signal"] and members["dbus_property"]
    api = (DOCS / "dbus-api.md").read_text()
    missing = [
        f"{kind} {name}"
        for kind, names in members.items()
        for name in names
        if not re.search(rf"\b{name}\b", api)
    ]
    assert missing == [], "docs/dbus-api.md does not mention: " + ", ".join(missing)


def _example_keys() -> set[tuple[str, str]]:
    """(section, key) for every key docs/config.example.toml shows, commented or not."""
    keys: set[tuple[str, str]] = set()
    section = ""
    for raw in (DOCS / "config.example.toml").read_text().splitlines():
        line = raw.lstrip("# ").strip()
        head = re.match(r"^\[+([a-z0-9_.]+)\]+", line)
        if head:
            section = head.group(1)
            continue
        key = re.match(r"^([a-z_][a-z0-9_]*)\s*=", line)
        if key:
            keys.add((section, key.group(1)))
    return keys


def test_every_config_key_in_example() -> None:
    shown = _example_keys()
    wanted = {("", key) for key in config._TOP}
    wanted |= {
        (section, key)
        for section, keys in config._SECTIONS.items()
        for key in keys
        if f"{section}.{key}" not in config._SECTIONS  # a sub-table, shown as its own
    }
    missing = sorted(f"[{s}] {k}" if s else k for s, k in wanted - shown)
    assert missing == [], "docs/config.example.toml does not show: " + ", ".join(missing)
    unknown = sorted(
        f"[{s}] {k}" for s, k in shown - wanted if s != "vendor" and (s, k) not in wanted
    )
    assert unknown == [], "docs/config.example.toml shows keys the daemon refuses: " + ", ".join(
        unknown
    )


def _readme_command_lines() -> list[str]:
    """Every `tokenstation ...` command line in the README's shell blocks."""
    lines = []
    in_block = False
    for raw in README.read_text().splitlines():
        if raw.startswith("```"):
            in_block = raw.strip() in ("```sh", "```bash", "```console")
            continue
        if in_block:
            text = raw.split("#", 1)[0].strip()
            text = re.sub(r"^(sudo |\$ )", "", text)
            if text.startswith("tokenstation "):
                lines.append(text)
    return lines


def _options_of(words: list[str]) -> tuple[str, set[str]]:
    """The command path (``queue add``) and the options its parser knows."""
    parser = build_parser("*")
    path = []
    current = parser
    for word in words:
        sub = reference._sub_action(current)
        if sub is None or word not in sub.choices:
            break
        current = sub.choices[word]
        path.append(word)
    known = {s for a in current._actions for s in a.option_strings}
    return " ".join(path), known


def test_readme_commands_exist() -> None:
    """Each command the README shows is a real command, with options it really has."""
    lines = _readme_command_lines()
    assert lines, "the README shows no tokenstation command"
    bad = []
    for line in lines:
        words = shlex.split(line.replace("|", " ").replace("[", " ").replace("]", " "))[1:]
        path, known = _options_of(words)
        if not path:
            bad.append(f"{line}: no such command")
            continue
        for word in words:
            option = word.split("=", 1)[0]
            if option.startswith("--") and option not in known:
                bad.append(f"{line}: {path} has no {option}")
    assert bad == [], "\n".join(bad)


def test_readme_is_a_front_door() -> None:
    text = README.read_text()
    assert len(text.splitlines()) < 200
    for page in re.findall(r"\]\((docs/[^)#]+)", text):
        assert (ROOT / page).exists(), f"README links to {page}, which is missing"


def test_exit_codes_agree() -> None:
    """The README's table and the reference's say the same."""
    rows = dict(re.findall(r"^\| (\d+) \| (.+?) \|$", README.read_text(), re.M))
    assert {int(k) for k in rows} == {code for code, _ in reference.EXIT_CODES}


@pytest.mark.parametrize("page", [README, *sorted(DOCS.glob("*.md"))], ids=lambda p: p.name)
def test_no_not_yet_for_what_ships(page: Path) -> None:
    """No page says a shipped capability is missing."""
    text = page.read_text()
    for shipped in ("Molto2 in the daemon", "several stations sharing", "through the daemon, drop"):
        for hit in re.finditer(r"not yet[^.]*", text, re.I):
            assert shipped.lower() not in hit.group(0).lower(), f"{page.name}: {hit.group(0)}"
