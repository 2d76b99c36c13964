"""The one loader of private files (store key, pre-shared key, password, API token):
each rule refuses with its reason, and a file that keeps them all is read."""

from __future__ import annotations

import os
import pwd
from pathlib import Path

import pytest

from tokenstation.daemon.credentials import CredentialProblem, read_private

SECRET = "s3cret\n"


def private(folder: Path, name: str = "token.txt", mode: int = 0o600) -> Path:
    folder.mkdir(mode=0o700, exist_ok=True)
    path = folder / name
    path.write_text(SECRET)
    path.chmod(mode)
    return path


def test_a_private_file_in_a_private_folder_is_read(tmp_path: Path) -> None:
    assert read_private(private(tmp_path / "keys"), "API token") == SECRET


def test_a_missing_file_says_so(tmp_path: Path) -> None:
    with pytest.raises(CredentialProblem, match="does not exist") as caught:
        read_private(tmp_path / "nothing.key", "store key")
    assert caught.value.missing


def test_a_link_is_refused_and_not_followed(tmp_path: Path) -> None:
    target = private(tmp_path / "keys")
    link = tmp_path / "keys" / "link.txt"
    link.symlink_to(target)
    with pytest.raises(CredentialProblem, match="not a symbolic link"):
        read_private(link, "API token")


def test_a_file_others_may_read_is_refused(tmp_path: Path) -> None:
    with pytest.raises(CredentialProblem, match="chmod 600"):
        read_private(private(tmp_path / "keys", mode=0o640), "password")


def test_a_second_name_is_refused(tmp_path: Path) -> None:
    path = private(tmp_path / "keys")
    os.link(path, tmp_path / "keys" / "copy.txt")
    with pytest.raises(CredentialProblem, match="2 names"):
        read_private(path, "pre-shared key")


def test_a_folder_others_may_write_is_refused_unless_sticky(tmp_path: Path) -> None:
    path = private(tmp_path / "shared")
    (tmp_path / "shared").chmod(0o777)
    with pytest.raises(CredentialProblem, match="folder others may write"):
        read_private(path, "API token")
    (tmp_path / "shared").chmod(0o1777)  # as /tmp: others cannot rename or replace it
    assert read_private(path, "API token") == SECRET


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to give a file away")
def test_a_file_or_folder_of_another_user_is_refused(tmp_path: Path) -> None:
    nobody = pwd.getpwnam("nobody").pw_uid
    path = private(tmp_path / "keys")
    os.chown(path, nobody, -1)
    with pytest.raises(CredentialProblem, match="belongs to another user"):
        read_private(path, "store key")
    os.chown(path, 0, -1)
    os.chown(tmp_path / "keys", nobody, -1)
    with pytest.raises(CredentialProblem, match="folder of another user"):
        read_private(path, "store key")


def test_a_database_password_in_a_config_others_may_read_is_warned_about_once(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    from tokenstation.daemon import config

    path = tmp_path / "config.toml"
    path.write_text('[store]\nurl = "postgresql://ts:hunter2@db.example/ts"\n')
    path.chmod(0o644)
    with caplog.at_level("WARNING"):
        config.load(path, required=True)
        config.load(path, required=True)  # a command reading it twice
    warnings = [r.getMessage() for r in caplog.records if "readable by" in r.getMessage()]
    assert len(warnings) == 1, warnings
    assert "the database password" in warnings[0] and "everyone" in warnings[0]
    assert "hunter2" not in caplog.text
    caplog.clear()
    quiet = tmp_path / "quiet.toml"
    quiet.write_text('[store]\nurl = "postgresql://ts@db.example/ts"\n')  # ~/.pgpass
    quiet.chmod(0o644)
    with caplog.at_level("WARNING"):
        config.load(quiet, required=True)
    assert "readable by" not in caplog.text
