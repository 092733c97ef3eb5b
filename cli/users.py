"""``gridlink users``: list the users file, give a user a new key, or set a password.

Keys and passwords are written as salted scrypt digests (:mod:`api.credentials`); a
user whose key a file written before scrypt keeps as ``key_sha256`` moves to scrypt
when it is given a new key (``rekey``). The file is rewritten whole (comments are
not kept); the API reads it at start, so restart it afterwards.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING

import click

from settings import Settings

if TYPE_CHECKING:  # the API is imported only when a command runs
    from api.auth import Account


def _settings() -> Settings:
    from cli.main import _settings as load  # the CLI's loader: bad settings named, not traced

    return load()


def _path(settings: Settings, given: Path | None) -> Path:
    path = given or settings.users_file
    if path is None:
        raise click.ClickException("name the users file with --file or GRIDLINK_USERS_FILE")
    return path


def _load(path: Path) -> dict[str, Account]:
    from api.auth import UsersFileError, read_accounts

    try:
        return read_accounts(path)
    except UsersFileError as error:
        raise click.ClickException(error.reason) from None


def _save(path: Path, accounts: dict[str, Account]) -> None:
    from api.auth import write_accounts

    write_accounts(path, accounts.values(), header="GridLink users: keys and passwords are "
                   "kept as salted scrypt digests")


FILE = click.option("--file", "file", type=click.Path(dir_okay=False, path_type=Path),
                    default=None, help="The users file (default: GRIDLINK_USERS_FILE).")


@click.group()
def users() -> None:
    """The API's users: list them, give one a new key, set a password."""


@users.command("list")
@FILE
def list_users(file: Path | None) -> None:
    """Name, role, department and jurisdiction of every user, and how its secrets are kept."""
    for account in _load(_path(_settings(), file)).values():
        u = account.user
        kept = [kind for kind, value in (("key:scrypt", account.key_scrypt),
                                         ("key:sha256 (rekey it)", account.key_sha256),
                                         ("password", account.password_scrypt)) if value]
        click.echo(f"{u.name:32} {u.role:13} {u.department or '-':10} {u.region or '-':15} "
                   f"{', '.join(kept)}")


@users.command()
@click.argument("name")
@FILE
def rekey(name: str, file: Path | None) -> None:
    """Give NAME a new API key (printed once); its old key and sessions stop working."""
    from api.auth import keyed_account

    path = _path(_settings(), file)
    accounts = _load(path)
    if name not in accounts:
        raise click.ClickException(f"no user {name} in {path}")
    fresh, key = keyed_account(accounts[name].user)
    accounts[name] = replace(fresh, password_scrypt=accounts[name].password_scrypt)
    _save(path, accounts)
    click.echo(key)


@users.command()
@click.argument("name")
@FILE
@click.password_option("--password", prompt="New password", help="The new password "
                       "(asked for when not given).")
def passwd(name: str, file: Path | None, password: str) -> None:
    """Set NAME's password for the console's sign-in page (12 characters at least)."""
    from api.credentials import hash_secret

    if len(password) < 12:
        raise click.ClickException("a password needs 12 characters at least")
    path = _path(_settings(), file)
    accounts = _load(path)
    if name not in accounts:
        raise click.ClickException(f"no user {name} in {path}")
    accounts[name] = replace(accounts[name], password_scrypt=hash_secret(password))
    _save(path, accounts)
    click.echo(f"password of {name} set; the API takes it once restarted")
