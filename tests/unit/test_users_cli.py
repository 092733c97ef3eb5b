"""``gridlink users``: a legacy SHA-256 key moves to scrypt when the user is rekeyed; a
password is set for the sign-in page; the listing says how each secret is kept."""

from __future__ import annotations

from click.testing import CliRunner

from api.auth import Directory, hash_key
from cli.main import main


def test_rekey_moves_a_legacy_key_to_scrypt_and_passwd_sets_a_password(tmp_path):
    path = tmp_path / "users.toml"
    path.write_text(f'# old\n[[users]]\nname = "root"\nrole = "administrator"\n'
                    f'key_sha256 = "{hash_key("old-key")}"\n\n[[users]]\nname = "cg"\n'
                    f'role = "department"\ndepartment = "chengguan"\nregion = "371502"\n'
                    f'key_sha256 = "{hash_key("cg-key")}"\n', encoding="utf-8")
    runner = CliRunner()
    listed = runner.invoke(main, ["users", "list", "--file", str(path)])
    assert listed.exit_code == 0, listed.output
    assert "key:sha256 (rekey it)" in listed.output

    rekeyed = runner.invoke(main, ["users", "rekey", "root", "--file", str(path)])
    assert rekeyed.exit_code == 0, rekeyed.output
    key = rekeyed.output.strip()
    directory = Directory.load(path)
    assert directory.authenticate(key).name == "root"
    assert directory.legacy == ["cg"]  # the other user keeps its old key …
    assert directory.authenticate("cg-key").region == "371502"  # … and its jurisdiction
    assert hash_key("old-key") not in path.read_text(encoding="utf-8")

    short = runner.invoke(main, ["users", "passwd", "cg", "--file", str(path),
                                 "--password", "short"])
    assert short.exit_code != 0 and "12 characters" in short.output
    done = runner.invoke(main, ["users", "passwd", "cg", "--file", str(path),
                                "--password", "市容整洁-2026-春季巡查"])
    assert done.exit_code == 0, done.output
    signed_in = Directory.load(path).sign_in("cg", "市容整洁-2026-春季巡查")
    assert signed_in.user.department == "chengguan"
    missing = runner.invoke(main, ["users", "rekey", "nobody", "--file", str(path)])
    assert missing.exit_code != 0 and "no user nobody" in missing.output
