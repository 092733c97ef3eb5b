"""The users file: keys kept as SHA-256 digests, roles and scopes checked at load."""

from __future__ import annotations

import pytest

from api.auth import Directory, Role, UsersFileError, hash_key, write_demo_users
from api.errors import NotAuthenticated
from streams.records import Level


def test_demo_users_authenticate_by_key_and_the_file_keeps_only_digests(tmp_path):
    path = tmp_path / "users.toml"
    keys = write_demo_users(path, departments=["chengguan"], operator_regions={"wang": "371502"})
    text = path.read_text(encoding="utf-8")
    assert all(key not in text for key in keys.values())
    assert all(hash_key(key) in text for key in keys.values())

    directory = Directory.load(path)
    operator = directory.authenticate(keys["wang"])
    assert (operator.role, operator.region, operator.level) == (Role.OPERATOR, "371502",
                                                                Level.COUNTY)
    assert operator.actor == "operator:wang"
    assert operator.covers_region("371502004001002") and not operator.covers_region("371503001")
    desk = directory.authenticate(keys["chengguan-desk"])
    assert (desk.role, desk.department, desk.actor) == (Role.DEPARTMENT, "chengguan",
                                                        "department:chengguan-desk")
    assert directory.authenticate(keys["admin"]).covers_region("371581201001001")
    with pytest.raises(NotAuthenticated, match="unknown API key"):
        directory.authenticate("guess")


def test_without_a_users_file_nobody_authenticates():
    with pytest.raises(NotAuthenticated, match="GRIDLINK_USERS_FILE"):
        Directory.load(None).authenticate("anything")


@pytest.mark.parametrize(("entry", "message"), [
    ('name = "a"\nrole = "operator"\nregion = "3715"', "not a jurisdiction code"),
    ('name = "a"\nrole = "operator"\nregion = "371502"\nlevel = 3', "is not the level"),
    ('name = "a"\nrole = "department"', "needs department"),
    ('name = "a"\nrole = "mayor"', "needs name, role"),
])
def test_a_malformed_user_is_refused_at_load(tmp_path, entry: str, message: str):
    path = tmp_path / "users.toml"
    path.write_text(f'[[users]]\n{entry}\nkey_sha256 = "{hash_key("k")}"\n', encoding="utf-8")
    with pytest.raises(UsersFileError, match=message):
        Directory.load(path)


def test_two_users_with_one_key_are_refused(tmp_path):
    path = tmp_path / "users.toml"
    user = f'[[users]]\nname = "a"\nrole = "administrator"\nkey_sha256 = "{hash_key("k")}"\n'
    path.write_text(user + user.replace('"a"', '"b"'), encoding="utf-8")
    with pytest.raises(UsersFileError, match="repeats"):
        Directory.load(path)
