"""A shared drop folder cannot steer the daemon (issue 21).

A station's drop folder may be shared on purpose: here it belongs to the daemon's user,
and the group `users` may write in it (0770, not sticky), so a member may rename and
replace its subfolders. The member is `nobody` with the group `users` (setpriv); the
daemon runs as root, and as a throwaway user made for the test (useradd). Beside the
drop folder is a 0700 folder of the daemon's user holding a victim file the daemon could
read. Whatever the member does, nothing outside the daemon's own folders changes: the
victim is never read, zeroed nor re-moded, nothing is moved into a link's target, and
each refusal has its reason file. Needs root, setpriv and useradd.
"""

from __future__ import annotations

import os
import pwd
import shutil
import stat
import subprocess
import tempfile
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tokenstation.daemon.simulator.privatebus import PrivateBus, isolated_env

from conftest import BusWatcher, DaemonProc, run_cli, wait_until

USERS_GID = 100  # the group that may write in the shared drop folder
VICTIM = "otpauth://totp/Vault:root?secret=JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP&issuer=Vault"
DROPPED = "otpauth://totp/Drop:member?secret=KRSXG5CTMVRXEZLUKN2XAZLSKNSWG4TF&issuer=Drop"
MEMBER = ["setpriv", "--reuid=nobody", "--regid=nogroup", f"--groups={USERS_GID}"]


def _needs_root() -> None:
    if os.geteuid() != 0 or not all(shutil.which(t) for t in ("setpriv", "useradd")):
        if os.environ.get("CI"):
            pytest.fail("the drop-folder steering tests need root, setpriv and useradd")
        pytest.skip("needs root, setpriv and useradd")


@pytest.fixture(scope="module")
def station_user() -> Iterator[str]:
    """A throwaway user to run a user's daemon as."""
    _needs_root()
    name = f"ts-steer-{uuid.uuid4().hex[:6]}"
    subprocess.run(
        ["useradd", "--system", "--user-group", "--no-create-home", "--shell", "/bin/false", name],
        check=True,
    )
    try:
        yield name
    finally:
        subprocess.run(["userdel", name], check=False)


class _AnyUserBus(PrivateBus):
    """The session-like private bus, open to every local user (daemon and watcher differ)."""

    def config(self) -> str:
        return (
            super()
            .config()
            .replace(
                '<policy context="default">', '<policy context="default">\n    <allow user="*"/>', 1
            )
        )


@dataclass
class Station:
    """A daemon's world: who runs it, its shared drop folder, the victim beside it."""

    base: Path
    uid: int
    gid: int
    as_user: list[str]
    env: dict[str, str]
    bus: str

    @property
    def drop(self) -> Path:
        return self.base / "drop"

    @property
    def vault(self) -> Path:
        return self.base / "vault"

    @property
    def victim(self) -> Path:
        return self.vault / "victim.txt"

    def own(self, path: Path, mode: int) -> Path:
        os.chown(path, self.uid, self.gid)
        os.chmod(path, mode)
        return path


@pytest.fixture(params=["root", "user"])
def station(request: pytest.FixtureRequest, station_user: str) -> Iterator[Station]:
    base = Path(tempfile.mkdtemp(prefix="ts-steer-"))
    base.chmod(0o755)  # the member and the daemon's user reach their folders in it
    bus: PrivateBus = _AnyUserBus().start()
    try:
        if request.param == "root":
            uid, gid, as_user = 0, 0, []
        else:
            pw = pwd.getpwnam(station_user)
            uid, gid = pw.pw_uid, pw.pw_gid
            as_user = ["setpriv", f"--reuid={uid}", f"--regid={gid}", "--clear-groups"]
        home = base / "home"
        env = isolated_env(dict(os.environ), bus.address, home)
        env["PCSCLITE_CSOCK_NAME"] = str(base / "no-pcscd")  # no reader needed here
        st = Station(base, uid, gid, as_user, env, bus.address)
        for folder in (home, st.vault):
            folder.mkdir()
            st.own(folder, 0o700)
        st.drop.mkdir()
        os.chown(st.drop, uid, USERS_GID)
        os.chmod(st.drop, 0o770)  # shared with the group, not sticky: owned by the daemon's
        st.victim.write_text(VICTIM)
        st.own(st.victim, 0o600)
        yield st
    finally:
        bus.stop()
        shutil.rmtree(base, ignore_errors=True)


@pytest.fixture
def start(station: Station) -> Iterator[_Starter]:
    starter = _Starter(station)
    yield starter
    starter.stop()


class _Starter:
    def __init__(self, station: Station) -> None:
        self.station = station
        self.started: list[tuple[DaemonProc, BusWatcher]] = []

    def __call__(self, extra: str = "") -> tuple[DaemonProc, BusWatcher]:
        st = self.station
        n = len(self.started)
        config = st.base / f"config{n}.toml"
        config.write_text(
            f'[drop]\nfolder = "{st.drop}"\nstability_delay = 0.2\n{extra}'
            '[clock]\ntrust = "assume-synchronised"\n'
        )
        config.chmod(0o644)
        watcher = BusWatcher(st.bus)
        daemon = DaemonProc(
            st.env, ["--config", str(config)], st.base / f"daemon{n}.log", st.as_user
        )
        self.started.append((daemon, watcher))
        wait_until((st.drop / ".taking" / "erase").is_dir, 5.0, "subfolders made")
        assert (st.drop / ".taking").stat().st_uid == st.uid  # made by the daemon's user
        return daemon, watcher

    def stop(self) -> None:
        for daemon, watcher in self.started:
            daemon.stop()
            watcher.close()


def member(script: str, station: Station) -> None:
    """Run ``script`` as a member of the group that may write in the drop folder."""
    done = subprocess.run(
        [*MEMBER, "sh", "-ec", script],
        cwd=station.drop,
        capture_output=True,
        text=True,
        timeout=20,
        check=False,
    )
    assert done.returncode == 0, done.stderr


def victim_untouched(st: Station) -> None:
    assert sorted(os.listdir(st.vault)) == ["victim.txt"], "something was moved into the vault"
    assert st.victim.read_text() == VICTIM
    info = os.stat(st.victim)
    assert (stat.S_IMODE(info.st_mode), info.st_uid) == (0o600, st.uid)


def status(st: Station) -> str:
    done = run_cli(st.env, "status")
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_a_replaced_failed_folder_gets_nothing_and_status_says_so(
    station: Station, start: _Starter
) -> None:
    st = station
    daemon, bus = start()
    # A member hides failed/ and puts a link to the vault in its place, then drops a file
    # that is refused (another user's): on main it was moved into the vault.
    member("mv failed failed.old && ln -s ../vault failed && echo 'rm -rf /' > evil.sh", st)
    event = bus.expect("FileTaken", file="evil.sh")
    victim_untouched(st)
    assert event["verdict"] == "error" and event["moved_to"] == ""
    assert (st.drop / ".taking" / "claim" / "evil.sh").exists()  # held where it was claimed
    wait_until(lambda: "failed is a symbolic link" in daemon.output(), 3.0, "logged")
    shown = status(st)
    assert "NOT TAKING FILES THAT NEED IT" in shown and "failed is a symbolic link" in shown
    # The operator removes the link: the daemon makes its own failed/ again and the next
    # refusal has its reason file there.
    (st.drop / "failed").unlink()
    member("echo hello > notes.doc", st)
    event = bus.expect("FileTaken", file="notes.doc")
    assert event["moved_to"] == str(st.drop / "failed" / "notes.doc")
    reason = (st.drop / "failed" / "notes.doc.reason.txt").read_text()
    assert "belongs to nobody" in reason and "[drop] owners" in reason
    shown = status(st)
    assert "NOT TAKING" not in shown and "others may write in it: the group users" in shown
    victim_untouched(st)
    assert daemon.proc.poll() is None


def test_a_replaced_claim_folder_takes_nothing(station: Station, start: _Starter) -> None:
    st = station
    daemon, bus = start()
    # .taking replaced by a link to a folder of the member's, whose claim/ is a link to
    # the vault; then a file named like the victim is dropped.
    member(
        'mkdir -m 755 /tmp/ts-steer-$$ && ln -s "$PWD/../vault" /tmp/ts-steer-$$/claim'
        " && mkdir /tmp/ts-steer-$$/erase && mv .taking .taking.old"
        " && ln -s /tmp/ts-steer-$$ .taking && echo hello > victim.txt",
        st,
    )
    try:
        wait_until(
            lambda: (
                ".taking is a symbolic link" in daemon.output()
                or not (st.drop / "victim.txt").exists()
                or bus.count("FileTaken") > 0
            ),
            5.0,
            "refused",
        )
        victim_untouched(st)
        # Never claimed: on main it was moved through the links into the vault, judged there.
        assert (st.drop / "victim.txt").read_text() == "hello\n"
        assert bus.count("FileTaken") == 0
        assert ".taking is a symbolic link" in status(st)
    finally:
        target = os.readlink(st.drop / ".taking")
        shutil.rmtree(target, ignore_errors=True)
    # Another user's .taking (a real folder this time) is refused just the same.
    (st.drop / ".taking").unlink()
    member("mkdir -m 777 .taking && ln -s ../../vault .taking/claim", st)
    wait_until(lambda: "a folder of another user (nobody)" in daemon.output(), 5.0, "refused")
    victim_untouched(st)
    assert (st.drop / "victim.txt").read_text() == "hello\n"
    assert daemon.proc.poll() is None


def test_a_replaced_archive_keeps_nothing(station: Station, start: _Starter) -> None:
    st = station
    daemon, bus = start('after = "archive"\n')
    member("mv archive archive.old && ln -s ../vault archive", st)
    dropped = st.drop / "in.txt"
    dropped.write_text(DROPPED)
    st.own(dropped, 0o600)  # the daemon's user's own file: taken
    event = bus.expect("FileTaken", file="in.txt")
    assert event["verdict"] == "ok" and len(event["queued"]) == 1
    wait_until(
        lambda: (
            not (st.drop / ".taking" / "claim" / "in.txt").exists()
            or ("archive is a symbolic link" in daemon.output())
        ),
        3.0,
        "kept or refused",
    )
    victim_untouched(st)
    assert (st.drop / ".taking" / "claim" / "in.txt").read_text() == DROPPED  # held there
    assert "archive is a symbolic link" in status(st)
    assert daemon.proc.poll() is None


def test_a_file_of_a_listed_owner_is_taken(station: Station, start: _Starter) -> None:
    st = station
    _daemon, bus = start('owners = ["nobody"]\n')
    member(f"echo '{DROPPED}' > in.txt", st)
    event = bus.expect("FileTaken", file="in.txt")
    assert event["verdict"] == "ok" and len(event["queued"]) == 1
    wait_until(lambda: not list(st.drop.rglob("in.txt")), 3.0, "taken and erased")


def test_a_hard_link_is_refused_unread_and_its_target_untouched(
    station: Station, start: _Starter
) -> None:
    st = station
    _daemon, bus = start()
    target = st.vault / "other.txt"
    target.write_text(VICTIM)
    st.own(target, 0o640)
    os.link(target, st.drop / "linked.txt")  # the daemon's user's file, a second name
    event = bus.expect("FileTaken", file="linked.txt")
    wait_until(lambda: not (st.drop / "linked.txt").exists(), 3.0, "claimed")
    time.sleep(0.5)  # what main did next: zero the inode and re-mode it
    info = os.stat(target)
    assert target.read_text() == VICTIM and stat.S_IMODE(info.st_mode) == 0o640
    assert info.st_uid == st.uid
    assert event["verdict"] == "error" and event["queued"] == []
    reason = (st.drop / "failed" / "linked.txt.reason.txt").read_text()
    assert "hard link" in reason and "neither read, zeroed nor changed" in reason


def test_a_file_of_another_owner_is_refused_unread(station: Station, start: _Starter) -> None:
    st = station
    _daemon, bus = start()
    member(f"umask 022 && echo '{DROPPED}' > alice.txt", st)
    event = bus.expect("FileTaken", file="alice.txt")
    assert event["verdict"] == "error" and event["queued"] == []
    kept = st.drop / "failed" / "alice.txt"
    assert kept.read_text() == DROPPED + "\n"  # neither zeroed
    assert stat.S_IMODE(kept.stat().st_mode) == 0o644  # nor re-moded
    reason = (st.drop / "failed" / "alice.txt.reason.txt").read_text()
    assert "belongs to nobody" in reason and "[drop] owners" in reason
    victim_untouched(st)
