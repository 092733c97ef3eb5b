"""The users file: keys and passwords kept as salted scrypt digests (legacy SHA-256 keys
still accepted), roles and scopes checked at load; signed sessions and CSRF tokens."""

from __future__ import annotations

import re

import pytest

from api import credentials
from api.auth import (
    Account,
    Desk,
    Directory,
    Role,
    User,
    UsersFileError,
    hash_key,
    read_accounts,
    write_accounts,
    write_demo_users,
)
from api.errors import NotAuthenticated
from api.sessions import SessionSigner
from streams.records import Level


def test_demo_users_authenticate_by_key_and_the_file_keeps_only_salted_digests(tmp_path):
    path = tmp_path / "users.toml"
    keys = write_demo_users(path, departments=["chengguan"], operator_regions={"wang": "371502"},
                            desks=[Desk("township-371502004-desk", "township", "371502004")],
                            displays={"wall": "371500"})
    text = path.read_text(encoding="utf-8")
    assert all(key not in text for key in keys.values())
    assert all(hash_key(key) not in text for key in keys.values())  # no unsalted digest
    assert len(re.findall(r'key_scrypt = "scrypt\$16384\$8\$1\$', text)) == len(keys)

    directory = Directory.load(path)
    operator = directory.authenticate(keys["wang"])
    assert (operator.role, operator.region, operator.level) == (Role.OPERATOR, "371502",
                                                                Level.COUNTY)
    assert operator.actor == "operator:wang"
    assert operator.covers_region("371502004001002") and not operator.covers_region("371503001")
    desk = directory.authenticate(keys["chengguan-desk"])
    assert (desk.role, desk.department, desk.region) == (Role.DEPARTMENT, "chengguan", None)
    assert desk.sees_unit("chengguan", "371581001") and not desk.sees_unit("sifa", "371502004")
    township = directory.authenticate(keys["township-371502004-desk"])
    assert township.sees_unit("township", "371502004")
    assert not township.sees_unit("township", "371502001")  # another township's
    assert not township.sees_unit("township", "371502")  # served at the county above it
    wall = directory.authenticate(keys["wall"])
    assert (wall.role, wall.acts) == (Role.DISPLAY, False)
    assert directory.authenticate(keys["admin"]).covers_region("371581201001001")
    assert directory.legacy == []
    with pytest.raises(NotAuthenticated, match="unknown API key"):
        directory.authenticate("guess")
    with pytest.raises(NotAuthenticated, match="unknown API key"):  # a key's id, then garbage
        directory.authenticate(keys["wang"][:8] + "x" * 24)


def test_a_legacy_sha256_key_still_works_and_is_named_for_rekeying(tmp_path):
    path = tmp_path / "users.toml"
    path.write_text(f'[[users]]\nname = "root"\nrole = "administrator"\n'
                    f'key_sha256 = "{hash_key("old-key")}"\n', encoding="utf-8")
    directory = Directory.load(path)
    assert directory.authenticate("old-key").name == "root"
    assert directory.sign_in("root", "old-key").user.name == "root"  # the sign-in page too
    assert directory.legacy == ["root"]


def test_sign_in_takes_the_password_or_the_key_and_nothing_else(tmp_path):
    path = tmp_path / "users.toml"
    user = User(name="li", role=Role.OPERATOR, region="371502", level=Level.COUNTY)
    key = credentials.new_key()
    write_accounts(path, [Account(user=user, key_id=credentials.key_id(key),
                                  key_scrypt=credentials.hash_secret(key),
                                  password_scrypt=credentials.hash_secret("长城 long secret"))],
                   header="test")
    directory = Directory.load(path)
    assert directory.sign_in("li", "长城 long secret").user == user
    assert directory.sign_in("li", key).user == user
    for name, secret in (("li", "wrong"), ("li", ""), ("nobody", "长城 long secret")):
        with pytest.raises(NotAuthenticated, match="unknown user name, or a wrong"):
            directory.sign_in(name, secret)
    assert read_accounts(path)["li"].password_scrypt is not None


def test_a_scrypt_digest_carries_its_own_salt_and_parameters():
    first, second = credentials.hash_secret("s"), credentials.hash_secret("s")
    assert first != second  # salted
    assert credentials.verify_secret("s", first) and credentials.verify_secret("s", second)
    cheap = credentials.hash_secret("s", n=2**10)
    assert cheap.startswith("scrypt$1024$8$1$") and credentials.verify_secret("s", cheap)
    assert not credentials.verify_secret("t", cheap)
    with pytest.raises(credentials.MalformedDigest):
        credentials.verify_secret("s", "scrypt$1000$8$1$c2FsdHNhbHQ$ZGlnZXN0ZGlnZXN0ZGlnZXN0")


def test_without_a_users_file_nobody_authenticates():
    with pytest.raises(NotAuthenticated, match="GRIDLINK_USERS_FILE"):
        Directory.load(None).authenticate("anything")


@pytest.mark.parametrize(("entry", "message"), [
    ('name = "a"\nrole = "operator"\nregion = "3715"', "not a jurisdiction code"),
    ('name = "a"\nrole = "operator"\nregion = "371502"\nlevel = 3', "is not the level"),
    ('name = "a"\nrole = "display"', "not a jurisdiction code"),
    ('name = "a"\nrole = "department"', "needs department"),
    ('name = "a"\nrole = "department"\ndepartment = "sifa"\nregion = "12"',
     "not a jurisdiction code"),
    ('name = "a"\nrole = "mayor"', "needs name, role"),
])
def test_a_malformed_user_is_refused_at_load(tmp_path, entry: str, message: str):
    path = tmp_path / "users.toml"
    path.write_text(f'[[users]]\n{entry}\nkey_sha256 = "{hash_key("k")}"\n', encoding="utf-8")
    with pytest.raises(UsersFileError, match=message):
        Directory.load(path)


@pytest.mark.parametrize(("entry", "message"), [
    ('name = "a"\nrole = "administrator"', "needs name, role and key_sha256, key_scrypt"),
    ('name = "a"\nrole = "administrator"\nkey_id = "abc"\nkey_scrypt = "sha1$x"',
     "key_scrypt: expected scrypt"),
    (f'name = "a"\nrole = "administrator"\nkey_scrypt = "{credentials.hash_secret("k", n=2)}"',
     "needs key_id"),
])
def test_a_malformed_credential_is_refused_at_load(tmp_path, entry: str, message: str):
    path = tmp_path / "users.toml"
    path.write_text(f"[[users]]\n{entry}\n", encoding="utf-8")
    with pytest.raises(UsersFileError, match=message):
        Directory.load(path)


def test_two_users_with_one_key_or_one_name_are_refused(tmp_path):
    path = tmp_path / "users.toml"
    user = f'[[users]]\nname = "a"\nrole = "administrator"\nkey_sha256 = "{hash_key("k")}"\n'
    path.write_text(user + user.replace('"a"', '"b"'), encoding="utf-8")
    with pytest.raises(UsersFileError, match="repeats"):
        Directory.load(path)
    path.write_text(user + user.replace(hash_key("k"), hash_key("j")), encoding="utf-8")
    with pytest.raises(UsersFileError, match="taken"):
        Directory.load(path)


# -- sessions and CSRF ------------------------------------------------------------------------


class Clock:
    def __init__(self) -> None:
        self.now = 1_800_000_000.0

    def __call__(self) -> float:
        return self.now


def test_a_session_token_is_signed_expires_and_can_be_revoked():
    clock = Clock()
    signer = SessionSigner(secret=b"k" * 32, lifetime_seconds=3600, clock=clock)
    token, session = signer.issue("li", "fp")
    assert signer.read(token) == session
    body, signature = token.split(".")
    assert signer.read(body + "." + signature[:-2] + "AA") is None  # forged signature
    other = SessionSigner(secret=b"j" * 32, lifetime_seconds=3600, clock=clock)
    assert other.read(token) is None  # another secret
    clock.now += 3601
    assert signer.read(token) is None  # expired
    clock.now -= 3601
    signer.revoke(session)
    assert signer.read(token) is None  # logged out


def test_the_csrf_token_belongs_to_its_session():
    signer = SessionSigner(secret=b"k" * 32, lifetime_seconds=3600)
    _, one = signer.issue("li", "fp")
    _, two = signer.issue("li", "fp")
    assert signer.check_csrf(one, signer.csrf_token(one))
    assert not signer.check_csrf(one, signer.csrf_token(two))
    assert not signer.check_csrf(one, None) and not signer.check_csrf(one, "")


def test_a_changed_key_or_password_ends_the_users_sessions(tmp_path):
    path = tmp_path / "users.toml"
    keys = write_demo_users(path, departments=[], operator_regions={"li": "371502"})
    account = Directory.load(path).sign_in("li", keys["li"])
    signer = SessionSigner(secret=b"k" * 32, lifetime_seconds=3600)
    _, session = signer.issue("li", account.fingerprint)
    assert Directory.load(path).session_user(session) == account.user
    write_demo_users(path, departments=[], operator_regions={"li": "371502"})  # new keys
    assert Directory.load(path).session_user(session) is None
