"""The command reference drawn from the parsers themselves: the manual page
(``debian/tokenstation.1``) and ``docs/cli.md``, so neither can list a command or an
option the program does not have, nor miss one it has.

``python -m tokenstation.daemon.cli.reference`` rewrites both files from a checkout;
``tests/unit/test_docs.py`` fails when a committed copy is out of date.
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass
from pathlib import Path

from tokenstation.daemon import __version__
from tokenstation.daemon.cli import _DESCRIPTION, build_parser
from tokenstation.daemon.cli.commands import COMMANDS

#: The exit codes every command uses (README "Exit codes" says the same; a test checks).
EXIT_CODES: tuple[tuple[int, str], ...] = (
    (0, "done (scan: every file ok or ignored)"),
    (
        1,
        "failed, or refused by the token (authentication, a lost field, a clock that did not take)",
    ),
    (2, "bad input: arguments, files, secrets, unknown job ids or serials; nothing was sent"),
    (
        3,
        "not there: no pcscd, reader or token; for commands that go through the daemon, "
        "no D-Bus bus or no daemon; a shared database that cannot be reached",
    ),
    (
        4,
        "refused by tokenstation for safety, nothing written: not confirmed, a restricted or "
        "unknown model, a secret already queued, a reader another program holds, a second "
        "daemon on one bus",
    ),
    (130, "interrupted (Ctrl-C)"),
)

FILES: tuple[tuple[str, str], ...] = (
    ("~/.config/tokenstation/config.toml", "the user's configuration"),
    ("/etc/tokenstation/config.toml", "the configuration of an unattended station"),
    ("~/.local/state/tokenstation/", "the token registry (station: /var/lib/tokenstation/)"),
    (
        "~/.local/share/tokenstation/",
        "the burn queue, the drop folder and the provisioning log (station: "
        "/var/lib/tokenstation/)",
    ),
)


@dataclass(frozen=True)
class Option:
    """One option or positional argument as the reference shows it."""

    names: str
    help: str


@dataclass(frozen=True)
class Command:
    """One command (or one action of a command, such as ``queue add``)."""

    name: str
    summary: str
    usage: str
    options: tuple[Option, ...]
    actions: tuple[Command, ...]


def _sub_action(
    parser: argparse.ArgumentParser,
) -> argparse._SubParsersAction[argparse.ArgumentParser] | None:
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return action
    return None


def _metavar(action: argparse.Action) -> str:
    """What the reference shows for an argument's value."""
    if isinstance(action.metavar, tuple):
        return " ".join(action.metavar)
    if action.metavar:
        return str(action.metavar)
    if action.choices is not None and not action.option_strings:
        return action.dest.upper()
    if action.choices is not None:
        return "|".join(str(c) for c in action.choices)
    return action.dest.upper()


def _options(parser: argparse.ArgumentParser) -> tuple[Option, ...]:
    found = []
    for action in parser._actions:
        if action.help == argparse.SUPPRESS or isinstance(
            action, argparse._HelpAction | argparse._SubParsersAction
        ):
            continue
        if action.option_strings:
            names = ", ".join(action.option_strings)
            if action.nargs != 0:
                names += " " + _metavar(action)
        else:
            names = _metavar(action)
        text = (action.help or "").replace("%(default)s", str(action.default))
        found.append(Option(names, " ".join(text.split())))
    return tuple(found)


def _usage(parser: argparse.ArgumentParser) -> str:
    formatter = argparse.HelpFormatter(parser.prog, width=88)
    formatter.add_usage(parser.usage, parser._actions, parser._mutually_exclusive_groups, "")
    return formatter.format_help().strip("\n")


def _command(name: str, summary: str, parser: argparse.ArgumentParser) -> Command:
    sub = _sub_action(parser)
    actions: tuple[Command, ...] = ()
    if sub is not None:
        helps = {a.dest: a.help or "" for a in sub._choices_actions}
        actions = tuple(
            _command(f"{name} {action}", helps.get(action, ""), p)
            for action, p in sub.choices.items()
        )
    return Command(name, summary, _usage(parser), _options(parser), actions)


def commands() -> tuple[Command, ...]:
    """Every command of the program, in the order of the command table."""
    parser = build_parser("*")
    sub = _sub_action(parser)
    assert sub is not None
    return tuple(_command(name, COMMANDS[name][1], sub.choices[name]) for name in COMMANDS)


def _roff(text: str) -> str:
    """Text escaped for roff: backslashes, hyphens, and a leading dot or quote."""
    text = text.replace("\\", "\\e").replace("-", "\\-")
    return "\\&" + text if text[:1] in (".", "'") else text


def release_month() -> str:
    """The month of the newest debian/changelog entry ("December 2026"), for the page."""
    import email.utils

    for line in (ROOT / "debian" / "changelog").read_text().splitlines():
        if line.startswith(" -- "):
            when = email.utils.parsedate_to_datetime(line.split(">", 1)[1].strip())
            return when.strftime("%B %Y")
    return ""


def manpage(cmds: tuple[Command, ...]) -> str:
    """The manual page, tokenstation(1)."""
    out = [
        f'.TH TOKENSTATION 1 "{release_month()}" "tokenstation {__version__}" "User Commands"',
        ".SH NAME",
        "tokenstation \\- burn, check and re\\-sync NFC\\-programmable TOTP hardware tokens",
        ".SH SYNOPSIS",
        ".B tokenstation",
        "[\\fB\\-\\-log\\-level\\fR \\fILEVEL\\fR] \\fICOMMAND\\fR [\\fIoptions\\fR]",
        ".SH DESCRIPTION",
        _roff(_DESCRIPTION),
        "A resident daemon watches the PC/SC readers and a drop folder and offers its work",
        "over D\\-Bus; a tray icon and desktop notifications show it.",
        ".SH COMMANDS",
    ]

    def emit(cmd: Command) -> None:
        out.extend([".SS " + _roff(cmd.name), _roff(cmd.summary), ".PP", ".nf"])
        out.extend(_roff(line) for line in cmd.usage.splitlines())
        out.append(".fi")
        for opt in cmd.options:
            out.extend([".TP", "\\fB" + _roff(opt.names) + "\\fR", _roff(opt.help or "-")])
        for action in cmd.actions:
            emit(action)

    for cmd in cmds:
        emit(cmd)
    out.append(".SH EXIT STATUS")
    for code, meaning in EXIT_CODES:
        out.extend([".TP", f"\\fB{code}\\fR", _roff(meaning)])
    out.append(".SH FILES")
    for path, meaning in FILES:
        out.extend([".TP", ".I " + _roff(path), _roff(meaning)])
    out.extend(
        [
            ".SH SEE ALSO",
            ".BR pcscd (8),",
            ".BR systemctl (1);",
            "/usr/share/doc/tokenstation/ (README.md and the docs pages)",
        ]
    )
    return "\n".join(out) + "\n"


def markdown(cmds: tuple[Command, ...]) -> str:
    """docs/cli.md: the same reference as the manual page, for the web and a checkout."""
    out = [
        "# Command reference",
        "",
        "Generated from the program's own parsers by `python -m "
        "tokenstation.daemon.cli.reference` (a test fails when this page is out of date). "
        "`tokenstation COMMAND --help` prints the same for one command.",
        "",
    ]

    def emit(cmd: Command, level: str) -> None:
        out.extend([f"{level} `{cmd.name}`", "", cmd.summary, "", "```", cmd.usage, "```", ""])
        for opt in cmd.options:
            out.append(f"- `{opt.names}`: {opt.help}" if opt.help else f"- `{opt.names}`")
        if cmd.options:
            out.append("")
        for action in cmd.actions:
            emit(action, level + "#")

    for cmd in cmds:
        emit(cmd, "##")
    out.extend(["## Exit codes", "", "| Code | Meaning |", "|---|---|"])
    out.extend(f"| {code} | {meaning} |" for code, meaning in EXIT_CODES)
    return "\n".join(out) + "\n"


ROOT = Path(__file__).resolve().parents[2]
TARGETS = {"debian/tokenstation.1": manpage, "docs/cli.md": markdown}


def main() -> int:
    """Rewrite the manual page and docs/cli.md in this checkout."""
    cmds = commands()
    for relative, render in TARGETS.items():
        (ROOT / relative).write_text(render(cmds))
        print(f"wrote {relative}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
