"""The records that replaced dataclasses on the scan path behave as the dataclasses did:
equality, hashing, immutability, pickling (the decoder pool) and a repr without secrets."""

from __future__ import annotations

import pickle

import pytest

from tokenstation.daemon.intake.otpauth import OtpAccount, parse_otpauth
from tokenstation.daemon.intake.payload import Candidate, Limits, Verdict
from tokenstation.daemon.qr.symbols import DecodeResult, Symbol, unique

URI = "otpauth://totp/ACME:bob?secret=JBSWY3DPEHPK3PXP&issuer=ACME"


def test_an_account_compares_hashes_and_shows_no_secret() -> None:
    account = parse_otpauth(URI)
    assert account == parse_otpauth(URI) and hash(account) == hash(parse_otpauth(URI))
    assert account != parse_otpauth(URI.replace("bob", "eve"))
    assert account != ("totp", "ACME", "bob")  # only records of its own class are equal
    shown = repr(account) + repr(Candidate(account, "86596320000001", "QR"))
    assert repr(account).startswith("OtpAccount(type='totp', issuer='ACME', account='bob', ")
    assert "secret" not in shown and "JBSWY3DPEHPK3PXP" not in shown
    assert account.secret.fingerprint not in shown
    with pytest.raises(AttributeError):
        account.digits = 8


def test_a_verdict_is_mutable_unhashable_and_has_its_own_lists() -> None:
    a, b = Verdict("a.png", "no-qr", "rejected"), Verdict("a.png", "no-qr", "rejected")
    assert a == b and a.warnings is not b.warnings
    a.warnings.append("w")
    assert a != b
    with pytest.raises(TypeError):
        hash(a)
    assert (
        repr(b) == "Verdict(file='a.png', kind='no-qr', verdict='rejected', reason='', warnings=[])"
    )
    assert Limits() == Limits(3000, 1024 * 1024) != Limits(max_jobs=1)


def test_decode_results_survive_pickling_and_symbols_dedupe() -> None:
    sym = Symbol("QR-Code", "x", b"x")
    result = DecodeResult(unique([sym, Symbol("QR-Code", "x", b"x")]), "zxing-cpp", (9, 9))
    assert result.symbols == (sym,) and result.frames == 1 and not result.timed_out
    back = pickle.loads(pickle.dumps(result))
    assert back == result and isinstance(back.symbols[0], Symbol)
    assert isinstance(OtpAccount("totp", "", "x", parse_otpauth(URI).secret), OtpAccount)
