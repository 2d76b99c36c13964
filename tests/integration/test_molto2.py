"""Molto2 end to end on the real pcscd + vpcd: `simulate --model molto2` and the CLI."""

from __future__ import annotations

import base64
import functools
import hashlib
import hmac
import json
import signal
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tokenstation.daemon.simulator.stack import PcscStack

from conftest import SimToken, card_present, run_cli, wait_until

Cli = Callable[..., subprocess.CompletedProcess[str]]
Sim = Callable[..., SimToken]

pytestmark = pytest.mark.pcsc

SEEDS = [f"tokenstation-test-{i:05d}".encode() for i in range(200)]


def b32(raw: bytes) -> str:
    return base64.b32encode(raw).decode().rstrip("=")


def fingerprint(raw: bytes) -> str:
    return hashlib.sha256(raw).hexdigest()[:8]


def code_at(raw: bytes, t: float, period: int, algo: str, digits: int) -> str:
    digest = hashlib.sha256 if algo == "sha256" else hashlib.sha1
    mac = hmac.new(raw, int(t // period).to_bytes(8, "big"), digest).digest()
    off = mac[-1] & 0x0F
    value = int.from_bytes(mac[off : off + 4], "big") & 0x7FFFFFFF
    return str(value % 10**digits).zfill(digits)


def js(proc: subprocess.CompletedProcess[str]) -> dict[str, Any]:
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)  # type: ignore[no-any-return]


@pytest.fixture
def mcli(pcsc_stack: PcscStack, tmp_path: Path) -> Cli:
    """The CLI with a private XDG state/config (the ledger of burned accounts goes there)."""
    env = pcsc_stack.env()
    env["XDG_STATE_HOME"] = str(tmp_path / "state")
    env["XDG_CONFIG_HOME"] = str(tmp_path / "config")
    return functools.partial(run_cli, env)


def burn_secret(
    cli: Cli, raw: bytes, profile: str, *flags: str
) -> subprocess.CompletedProcess[str]:
    """`tokenstation burn` of ``raw`` (base32 on stdin) to ``profile``, confirmed (--yes)."""
    return cli("burn", "--secret-file", "-", "--profile", profile, *flags, "--yes", stdin=b32(raw))


def molto2(simulator: Sim, *args: str) -> SimToken:
    return simulator("--model", "molto2", *args)


def profile(state: dict[str, Any], n: int) -> dict[str, Any]:
    return state["profiles"][n]  # type: ignore[no-any-return]


def displayed_code_is_right(
    sim: SimToken, n: int, raw: bytes, *, period: int, algo: str, digits: int
) -> None:
    def check() -> bool:
        st = sim.fresh_state()
        p = profile(st, n)
        return p["code"] == code_at(
            raw, st["host_time"] + p["clock_offset_s"], period, algo, digits
        )

    # at most one retry: a state written across a step boundary may show either code
    assert check() or check()


def test_burn_several_profiles_titles_and_codes(mcli: Cli, simulator: Sim) -> None:
    sim = molto2(simulator)
    uris = [
        (f"otpauth://totp/Bitbucket:alice?secret={b32(SEEDS[0])}&issuer=Bitbucket", "Bitbucket:al"),
        (
            f"otpauth://totp/GitHub:bob?secret={b32(SEEDS[1])}&algorithm=SHA256&digits=8&period=60",
            "GitHub:bob",
        ),
        (f"otpauth://totp/Zoë:éric?secret={b32(SEEDS[2])}&digits=4", "Zoë:éric"),
    ]
    for i, (uri, title) in enumerate(uris):
        out = js(mcli("burn", "--uri-file", "-", "--profile", "next", "--yes", "--json", stdin=uri))
        assert out["profile"] == i and out["title"] == title
        assert out["secret_fingerprint"] == fingerprint(SEEDS[i])
    out = js(burn_secret(mcli, SEEDS[3], "42", "--title", "VPN", "--json"))
    assert out["profile"] == 42

    st = sim.fresh_state()
    assert [profile(st, n)["title"] for n in (0, 1, 2, 42)] == [
        "Bitbucket:al",
        "GitHub:bob",
        "Zoë:éric",
        "VPN",
    ]
    assert len("Zoë:éric".encode()) <= 12
    assert profile(st, 1)["hmac"] == "sha256" and profile(st, 1)["digits"] == 8
    assert sum(p["seed_present"] for p in st["profiles"]) == 4
    displayed_code_is_right(sim, 0, SEEDS[0], period=30, algo="sha1", digits=6)
    displayed_code_is_right(sim, 1, SEEDS[1], period=60, algo="sha256", digits=8)
    displayed_code_is_right(sim, 2, SEEDS[2], period=30, algo="sha1", digits=4)
    displayed_code_is_right(sim, 42, SEEDS[3], period=30, algo="sha1", digits=6)

    seeded = js(mcli("profiles", "--json"))  # as the listing: the profiles in use
    assert [r["profile"] for r in seeded["profiles"]] == [0, 1, 2, 42], seeded
    listing = js(mcli("profiles", "--json", "--all"))
    assert len(listing["profiles"]) == 100
    assert listing["serial"] == st["serial"] and listing["free"] == 96
    assert listing["next_free"] == 3
    rows = {r["profile"]: r for r in listing["profiles"]}
    assert rows[0]["account"] == "Bitbucket:alice" and rows[0]["title"] == "Bitbucket:al"
    assert rows[1] | {"account": None} == {
        "profile": 1,
        "title": "GitHub:bob",
        "seed_present": True,
        "hmac": "sha256",
        "period": 60,
        "digits": 8,
        "account": None,
    }
    assert rows[5]["seed_present"] is False and rows[5]["account"] is None
    text = mcli("profiles")
    assert text.returncode == 0 and "Bitbucket:alice" in text.stdout and "96 free" in text.stdout


def test_a_flag_fills_what_the_uri_leaves_out_and_never_overrides_what_it_states(
    mcli: Cli, simulator: Sim
) -> None:
    """`--digits 8` on a URI without `digits` burns 8 digits; against a URI's own
    `digits=6` it is bad input (exit 2) naming both, and nothing is written. A short
    secret is warned about as `scan` warns (issue: the first hour)."""
    sim = molto2(simulator)
    bare = f"otpauth://totp/Acme:dave?secret={b32(SEEDS[4])}&issuer=Acme"
    out = mcli("burn", "--uri-file", "-", "--profile", "next", "--digits", "8", "--yes", stdin=bare)
    assert out.returncode == 0, out.stderr
    assert profile(sim.fresh_state(), 0)["digits"] == 8
    stated = f"otpauth://totp/Acme:erin?secret={b32(SEEDS[5])}&digits=6"
    refused = mcli(
        "burn", "--uri-file", "-", "--profile", "next", "--digits", "8", "--yes", stdin=stated
    )
    assert refused.returncode == 2
    assert "--digits 8 contradicts the URI's digits 6" in refused.stderr
    assert profile(sim.fresh_state(), 1)["seed_present"] is False
    short = f"otpauth://totp/Acme:fay?secret={b32(b'1234')}"
    warned = mcli("burn", "--uri-file", "-", "--profile", "next", "--yes", stdin=short)
    assert warned.returncode == 0 and "the secret is 32 bits" in warned.stderr


def test_a_profile_with_a_seed_is_never_overwritten(mcli: Cli, simulator: Sim) -> None:
    sim = molto2(simulator, "--profile-seed", f"3:{b32(SEEDS[10])}:Keep")
    before = profile(sim.fresh_state(), 3)
    proc = burn_secret(mcli, SEEDS[11], "3")
    assert proc.returncode == 4
    assert "already holds a seed" in proc.stderr and "--profile next" in proc.stderr
    after = profile(sim.fresh_state(), 3)
    assert after["seed_fingerprint"] == fingerprint(SEEDS[10]) == before["seed_fingerprint"]
    assert after["title"] == "Keep" and after["seed_writes"] == 0
    # `next` goes around it
    out = js(burn_secret(mcli, SEEDS[11], "next", "--title", "x", "--json"))
    assert out["profile"] == 0
    # delete is explicit, asks first, and keeps the title
    assert mcli("delete", "--profile", "3").returncode == 4
    assert profile(sim.fresh_state(), 3)["seed_present"] is True
    assert js(mcli("delete", "--profile", "3", "--yes", "--json"))["deleted"] is True
    st = profile(sim.fresh_state(), 3)
    assert st["seed_present"] is False and st["title"] == "Keep"


def test_sync_sets_every_seeded_profile_from_its_own_settings(mcli: Cli, simulator: Sim) -> None:
    sim = molto2(
        simulator,
        "--clock-offset",
        "-42.3",
        "--algorithm",
        "sha256",
        "--period",
        "60",
        "--digits",
        "8",
        *(a for n in (1, 7, 99) for a in ("--profile-seed", f"{n}:{b32(SEEDS[20 + n])}:p{n}")),
    )
    out = js(mcli("sync", "--yes", "--json"))
    assert [p["profile"] for p in out["profiles"]] == [1, 7, 99]
    for p in out["profiles"]:
        assert -43.5 < p["drift_before_s"] < -41.0
        assert abs(p["drift_after_s"]) <= 1.0
        assert p["settings"] == {"hmac": "sha256", "period": 60, "digits": 8, "display_timeout": 30}
    st = sim.fresh_state()
    for n in (1, 7, 99):
        p = profile(st, n)
        assert abs(p["clock_offset_s"]) < 1.0 and p["sync_writes"] == 1 and p["config_writes"] == 0
        assert p["seed_fingerprint"] == fingerprint(SEEDS[20 + n])
        displayed_code_is_right(sim, n, SEEDS[20 + n], period=60, algo="sha256", digits=8)
    assert profile(st, 2)["sync_writes"] == 0  # empty profiles are left alone
    assert abs(profile(st, 2)["clock_offset_s"] + 42.3) < 0.1


def test_wrong_customer_key_fails_once(mcli: Cli, simulator: Sim, tmp_path: Path) -> None:
    sim = molto2(simulator, "--customer-key", "our own key")
    proc = burn_secret(mcli, SEEDS[30], "0", "--title", "x")
    assert (
        proc.returncode == 1
        and "9 attempts are left" in proc.stderr
        and "Do not retry" in proc.stderr
    )
    st = sim.fresh_state()
    assert st["attempts_left"] == 9 and profile(st, 0)["seed_present"] is False
    config = tmp_path / "config" / "tokenstation" / "config.toml"
    config.parent.mkdir(parents=True)
    config.write_text('[molto2]\ncustomer_key = "our own key"\n')
    config.chmod(0o600)
    js(burn_secret(mcli, SEEDS[30], "0", "--title", "x", "--json"))
    assert profile(sim.fresh_state(), 0)["seed_present"] is True


def test_key_change_waits_for_the_button(mcli: Cli, simulator: Sim) -> None:
    sim = molto2(simulator)
    assert (
        mcli("molto2", "change-key", "--new-key-file", "-", stdin="fresh key").returncode == 4
    )  # asks first
    out = js(
        mcli("molto2", "change-key", "--new-key-file", "-", "--yes", "--json", stdin="fresh key")
    )
    assert out["awaiting_button"] is True
    assert sim.fresh_state()["pending_confirmation"] == "key"
    sim.proc.send_signal(signal.SIGUSR1)
    wait_until(lambda: sim.state()["confirmed"] == ["key"], 3.0, "the button press")


def test_molto2_commands_refuse_a_single_profile_token(mcli: Cli, simulator: Sim) -> None:
    sim = simulator("--serial", "86596320000001")
    proc = mcli("profiles")
    assert proc.returncode == 3 and "not a Token2 Molto2" in proc.stderr
    proc = burn_secret(mcli, SEEDS[40], "0")
    assert proc.returncode == 3
    assert sim.fresh_state()["seed_writes"] == 0


def test_profiles_without_reader_takes_the_one_molto2_among_several_tokens(
    mcli: Cli, simulator: Sim
) -> None:
    single = simulator("--serial", "86596320000001", slot=0)
    simulator(
        "--model",
        "molto2",
        "--serial",
        "58000077",
        "--profile-seed",
        f"3:{b32(SEEDS[3])}:VPN",
        slot=1,
    )
    listing = js(mcli("profiles", "--json"))
    assert listing["serial"] == "58000077" and listing["reader"] == "Virtual PCD 00 01"
    assert [(r["profile"], r["title"]) for r in listing["profiles"]] == [(3, "VPN")]
    # Two tokens, neither a Molto2: still the question which one.
    assert single.fresh_state()["config_writes"] == 0
    info = mcli("info")
    assert info.returncode == 3 and "several readers" in info.stderr


def test_pulled_mid_burn_then_resumes_at_the_next_free_profile(mcli: Cli, simulator: Sim) -> None:
    # probe, info, info, profile read, challenge, auth, seed write: pulled before the title
    sim = molto2(simulator, "--drop-after", "7")
    proc = burn_secret(mcli, SEEDS[50], "0", "--title", "a")
    assert proc.returncode == 1
    assert "pulled after the seed" in proc.stderr and "never overwritten" in proc.stderr
    wait_until(lambda: not card_present(sim.reader), 5.0, "the device pulled")
    sim.proc.send_signal(signal.SIGUSR2)  # plug it back in
    wait_until(lambda: card_present(sim.reader), 5.0, "the device back")
    listing = js(mcli("profiles", "--json"))
    assert listing["profiles"][0]["seed_present"] is True and listing["next_free"] == 1
    out = js(burn_secret(mcli, SEEDS[51], "next", "--title", "b", "--json"))
    assert out["profile"] == 1
    st = sim.fresh_state()
    assert profile(st, 0)["seed_fingerprint"] == fingerprint(SEEDS[50])
    assert profile(st, 1)["seed_fingerprint"] == fingerprint(SEEDS[51])
    assert st["seed_writes"] == 2  # nothing burned twice


def test_a_direct_command_never_shares_the_molto2_with_another_session(
    mcli: Cli, simulator: Sim, pcsc_stack: PcscStack
) -> None:
    """A Molto2's authentication holds for one session: while another program (as the
    daemon during an operation) has it open, a direct command sends nothing."""
    sim = molto2(simulator)
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys; from tokenstation.daemon.pcsc import PcscConnection as C; "
            "c = C(sys.argv[1]); print('open', flush=True); sys.stdin.read()",
            sim.reader,
        ],
        env=pcsc_stack.env(),
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline() == "open\n"
        apdus = sim.fresh_state()["apdus"]
        proc = burn_secret(mcli, SEEDS[60], "0", "--title", "x")
        assert proc.returncode == 4 and "is using it; nothing was sent" in proc.stderr
        assert mcli("profiles").returncode == 4
        assert sim.fresh_state()["apdus"] == apdus
    finally:
        holder.communicate("", timeout=10)
    assert js(mcli("profiles", "--json"))["free"] == 100  # once it is closed
