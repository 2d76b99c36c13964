"""The house's boundaries, read from the source with ast: no import cycles (function-level
imports count), ``token/`` pure, the tray on the client and event modules only, one
module per outside library, and the Molto2 named only where it lives."""

from __future__ import annotations

import ast
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = {"tokenstation.daemon": ROOT / "daemon", "tokenstation.tray": ROOT / "tray"}

# Each outside library is imported by one module of ours (its edge), named here.
OUTSIDE_LIBRARIES: dict[str, set[str]] = {
    "smartcard": {"tokenstation.daemon.pcsc"},
    "watchdog": {"tokenstation.daemon.intake.dropfolder"},
    "pyzbar": {"tokenstation.daemon.qr.zbar"},
    "zxingcpp": {"tokenstation.daemon.qr.zxing"},
    "pystray": {"tokenstation.tray.icon"},
    "psycopg": {"tokenstation.daemon.storage.postgres"},
    "pskc": {"tokenstation.daemon.handover.pskc_writer"},
    "matplotlib": {"tokenstation.daemon.registry.plot"},
    "dbus_next": {"tokenstation.daemon.bus.dbusio"},
    "dbus_fast": {"tokenstation.daemon.bus.dbusio"},
    "gi": {"tokenstation.tray.icon"},
}

# What the tray may import of the daemon: the event types and the D-Bus client side.
TRAY_MAY_IMPORT = (
    "tokenstation.daemon.events",
    "tokenstation.daemon.bus.client",
    "tokenstation.daemon.bus.names",
    "tokenstation.daemon.bus.address",
    "tokenstation.daemon.bus.dbusio",
    "tokenstation.daemon.log",
    "tokenstation.daemon.safetext",
    "tokenstation.daemon.token.sentences",  # joins sentences; imports nothing
    # The tray reads the same configuration file (its [notify] choices) and XDG folders.
    "tokenstation.daemon.config",
    "tokenstation.daemon.xdg",
)


def modules() -> dict[str, Path]:
    """Every module of ours by dotted name."""
    found: dict[str, Path] = {}
    for package, folder in PACKAGES.items():
        for path in folder.rglob("*.py"):
            parts = list(path.relative_to(folder).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts.pop()
            found[".".join([package, *parts])] = path
    return found


def imported_names(name: str, path: Path) -> Iterator[tuple[str, int]]:
    """The absolute module names ``name`` imports, anywhere in the file, with the line."""
    is_package = path.name == "__init__.py"
    tree = ast.parse(path.read_text(), str(path))
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield alias.name, node.lineno
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = name.split(".")
                base = base[: len(base) - node.level + (1 if is_package else 0)]
                prefix = ".".join(base + ([node.module] if node.module else []))
            else:
                prefix = node.module or ""
            for alias in node.names:
                yield f"{prefix}.{alias.name}", node.lineno


def in_type_checking_block(path: Path) -> set[int]:
    """Lines under ``if TYPE_CHECKING:`` (imports there never run)."""
    lines: set[int] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            for inner in node.body:
                for sub in ast.walk(inner):
                    if hasattr(sub, "lineno"):
                        lines.add(sub.lineno)
    return lines


def graph(include_type_checking: bool = False) -> dict[str, dict[str, int]]:
    """Module -> the modules of ours it imports (with one line number each)."""
    mods = modules()
    edges: dict[str, dict[str, int]] = {m: {} for m in mods}
    for name, path in mods.items():
        skip = set() if include_type_checking else in_type_checking_block(path)
        for imported, line in imported_names(name, path):
            if line in skip:
                continue
            # The longest module of ours that the name starts with.
            target = imported
            while target and target not in mods:
                target = target.rpartition(".")[0]
            if target and target != name and not name.startswith(target + "."):
                edges[name].setdefault(target, line)
    return edges


def cycles(edges: dict[str, dict[str, int]]) -> list[list[str]]:
    """The strongly connected components with more than one module (Tarjan)."""
    sys.setrecursionlimit(10_000)
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in edges[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in edges:
        if v not in index:
            visit(v)
    return found


#: The cycles still to be broken (issue 22: the family seam and the Provisioner split).
#: The test fails when one appears that is not listed, and when a listed one is gone
#: (then strike it here): the list only shrinks.
KNOWN_CYCLES: list[list[str]] = []


def test_no_new_import_cycles() -> None:
    """No cycle among our modules but the known ones, function-level and type-checking
    imports counted."""
    found = sorted(cycles(graph(include_type_checking=True)))
    assert found == sorted(KNOWN_CYCLES), "import cycles:\n" + "\n".join(
        " <-> ".join(c) for c in found
    )


def test_token_library_is_pure() -> None:
    """daemon/token/ imports only itself, the standard library and cryptography."""
    allowed_outside = {"cryptography"}
    bad = []
    for name, path in modules().items():
        if not name.startswith("tokenstation.daemon.token"):
            continue
        for target, line in imported_names(name, path):
            top = target.split(".")[0]
            if target.startswith("tokenstation."):
                if not target.startswith("tokenstation.daemon.token"):
                    bad.append(f"{path.name}:{line} {target}")
            elif top not in sys.stdlib_module_names and top not in allowed_outside and top:
                bad.append(f"{path.name}:{line} {target}")
    assert bad == []


def test_tray_uses_only_events_and_client() -> None:
    """The tray sees the daemon through its events and its D-Bus client, nothing else."""
    bad = []
    mods = modules()
    for name, path in mods.items():
        if not name.startswith("tokenstation.tray"):
            continue
        for imported, line in imported_names(name, path):
            target = imported  # the module it names (an attribute resolves to its module)
            while target and target not in mods:
                target = target.rpartition(".")[0]
            inside = target.startswith("tokenstation.daemon.")
            if inside and not target.startswith(TRAY_MAY_IMPORT):
                bad.append(f"{path.name}:{line} {target}")
    assert bad == [], "the tray reaches into the daemon:\n" + "\n".join(sorted(set(bad)))


def test_one_module_per_outside_library() -> None:
    """Each outside library is imported by its one edge module only."""
    bad = []
    for name, path in modules().items():
        for target, line in imported_names(name, path):
            top = target.split(".")[0]
            edge = OUTSIDE_LIBRARIES.get(top)
            if edge is not None and name not in edge:
                bad.append(f"{name}:{line} imports {top}")
    assert bad == [], "\n".join(sorted(set(bad)))


@pytest.mark.parametrize("rule", ["relative"])
def test_absolute_imports_only(rule: str) -> None:
    """One import rule: absolute imports everywhere (ruff TID252 enforces it too)."""
    bad = []
    for name, path in modules().items():
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.level:
                bad.append(f"{name}:{node.lineno}")
    assert bad == [], f"{len(bad)} {rule} imports, e.g. {bad[:5]}"


# -- the Molto2 named only where it lives (issue 22: one seam per token family) -------------

#: Where the Molto2 may be named: the protocol library, the simulator, its family (the
#: tables that list every family, and every family's configuration section, name each),
#: and its command-line modules.
MOLTO2_HOMES = (
    "tokenstation.daemon.token.",
    "tokenstation.daemon.simulator.",
    "tokenstation.daemon.families.molto2",
    "tokenstation.daemon.families.table",
    "tokenstation.daemon.families.sections",
    "tokenstation.daemon.cli.molto2_cmds",
    "tokenstation.daemon.cli.molto2_daemon",
)

#: Modules that still name it outside its homes: the list only shrinks (the test fails
#: when a module not listed names it, and when a listed one no longer does: strike it).
MOLTO2_NAMED_STILL: set[str] = set()


def molto2_names(path: Path) -> list[str]:
    """Where a module names the Molto2 in code: ``line: name`` for every identifier (a
    name used or defined, an attribute, an argument, a keyword) and every imported
    module or name that holds the word, case-insensitive.

    What counts is code: identifiers and imports. What does not count is text a person
    reads (docstrings, comments, string literals: "Molto2 58000001", the `molto2`
    command, the ``[molto2]`` section, a family's name in a view); a module's own file
    name is checked by its dotted name in :func:`test_the_molto2_is_named_only_where_it_lives`.
    """
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        names: list[str] = []
        if isinstance(node, ast.Name):
            names = [node.id]
        elif isinstance(node, ast.Attribute):
            names = [node.attr]
        elif isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            names = [node.name]
        elif isinstance(node, ast.arg) or (isinstance(node, ast.keyword) and node.arg):
            names = [node.arg]
        elif isinstance(node, ast.alias):
            names = [node.name, node.asname or ""]
        elif isinstance(node, ast.ImportFrom):
            names = [node.module or ""]
        line = getattr(node, "lineno", 0)
        found += [f"{line}: {n}" for n in names if "molto2" in n.lower()]
    return found


def test_the_molto2_is_named_only_where_it_lives() -> None:
    """No module outside the Molto2's homes has it in its name, its imports or its
    identifiers, but those still listed (and every listed one still does)."""
    naming = {}
    for name, path in modules().items():
        if name.startswith(MOLTO2_HOMES) or name + "." in MOLTO2_HOMES:
            continue
        hits = molto2_names(path) + (["module name"] if "molto2" in name.lower() else [])
        if hits:
            naming[name] = hits
    new = {n: hits[:3] for n, hits in naming.items() if n not in MOLTO2_NAMED_STILL}
    assert new == {}, "the Molto2 named outside its family:\n" + "\n".join(
        f"{n}: {h}" for n, h in sorted(new.items())
    )
    gone = sorted(MOLTO2_NAMED_STILL - set(naming))
    assert gone == [], f"no longer name the Molto2 (strike them from MOLTO2_NAMED_STILL): {gone}"


def test_the_molto2_check_sees_what_it_should(tmp_path: Path) -> None:
    """The check counts identifiers and imports, not the words people read."""
    sample = tmp_path / "sample.py"
    sample.write_text(
        '"""A Molto2 docstring."""\n'
        "from tokenstation.daemon.families import molto2\n"  # 2: import
        "# a Molto2 comment\n"
        "def f(is_molto2: bool) -> str:\n"  # 4: argument
        '    return "Molto2 58000001" if is_molto2 else molto2.MOLTO2.name\n'  # 5: names
    )
    hits = molto2_names(sample)
    assert sorted({h.split(":")[0] for h in hits}) == ["2", "4", "5"]
