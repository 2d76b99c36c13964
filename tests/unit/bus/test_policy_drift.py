"""The shipped system-bus policy and the interface agree: every method is public or for
the group only, and every signal that carries a job (its label, source file name or
seed fingerprint) reaches only the group. Read from packaging/dbus and the code, so a
new method or signal cannot slip past the policy (the real dbus-daemon applies it in
tests/integration/test_dbus_policy.py)."""

from __future__ import annotations

import ast
import dataclasses
import xml.etree.ElementTree as ET
from pathlib import Path

from tokenstation.daemon.bus.names import INTERFACE
from tokenstation.daemon.events import SIGNALS

ROOT = Path(__file__).resolve().parents[3]
POLICY = ROOT / "packaging/dbus/org.tokenstation.TokenStation1.conf"

#: What an event's fields must not carry to someone outside the group.
JOB_FIELDS = {"job", "queued", "duplicates", "file", "accounts"}


def contexts() -> dict[str, ET.Element]:
    root = ET.parse(POLICY).getroot()
    return {
        p.get("context") or f"group:{p.get('group')}": p
        for p in root.iter("policy")
        if p.get("context") or p.get("group")
    }


def methods() -> set[str]:
    """The methods the interface exports (``@method()`` in bus/interface.py)."""
    tree = ast.parse((ROOT / "daemon/bus/interface.py").read_text())
    out = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            for deco in node.decorator_list:
                if isinstance(deco, ast.Call) and getattr(deco.func, "id", "") == "method":
                    out.add(node.name)
    return out


def test_the_public_methods_are_the_read_only_ones_and_exist() -> None:
    default = contexts()["default"]
    public = {
        rule.get("send_member")
        for rule in default.iter("allow")
        if rule.get("send_interface") == INTERFACE
    }
    assert public == {"GetStatus", "ListPresent", "ListTokens", "GetToken"}
    assert public <= methods()
    assert len(methods()) >= 16  # the rest is for the group only
    group = contexts()["group:tokenstation"]
    assert any(r.get("send_interface") == INTERFACE for r in group.iter("allow"))


def test_every_signal_carrying_a_job_is_denied_outside_the_group() -> None:
    private = {
        name
        for kind, name in SIGNALS.items()
        if {f.name for f in dataclasses.fields(kind)} & JOB_FIELDS
    }
    assert {"FileTaken", "BurnOffered", "BurnDone", "BurnFailed"} <= private
    default = contexts()["default"]
    denied = {
        rule.get("receive_member")
        for rule in default.iter("deny")
        if rule.get("receive_interface") == INTERFACE and rule.get("receive_type") == "signal"
    }
    assert denied == private, f"in the policy's default context deny: {private - denied}"
    group = contexts()["group:tokenstation"]
    assert any(
        r.get("receive_interface") == INTERFACE and r.get("receive_type") == "signal"
        for r in group.iter("allow")
    )
