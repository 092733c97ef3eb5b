"""Who is calling: API keys, users and their scope (用户与权限).

Users come from a TOML file (``GRIDLINK_USERS_FILE``); keys are stored only as
SHA-256 hex digests::

    [[users]]
    name = "wang.li"
    role = "operator"            # 指挥中心值班员: acts on cases within its jurisdiction
    region = "371502"            # jurisdiction code: the region code prefix it covers
    level = 2                    # optional; the region's own level (1 city … 5 grid)
    key_sha256 = "…"

    [[users]]
    name = "cg-desk"
    role = "department"          # 职能部门: its own department's assignments only
    department = "chengguan"
    key_sha256 = "…"

    [[users]]
    name = "root"
    role = "administrator"       # everything
    key_sha256 = "…"

A request presents its key in ``X-API-Key`` or ``Authorization: Bearer <key>``.
Every command a user sends carries ``actor = "<role>:<name>"``.
"""

from __future__ import annotations

import hashlib
import secrets
import tomllib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any

from fastapi import Depends, Request
from fastapi.security import APIKeyHeader, HTTPAuthorizationCredentials, HTTPBearer

from api.errors import Forbidden, NotAuthenticated
from streams.errors import GridLinkError
from streams.jurisdiction import is_within, level_of
from streams.records import Level


class Role(StrEnum):
    OPERATOR = "operator"
    DEPARTMENT = "department"
    ADMINISTRATOR = "administrator"


@dataclass(frozen=True)
class User:
    name: str
    role: Role
    region: str | None = None  # operators: the jurisdiction they cover
    level: Level | None = None  # operators: the level they work at
    department: str | None = None  # department users

    @property
    def actor(self) -> str:
        """How the case log names this user (``"operator:wang.li"``)."""
        return f"{self.role}:{self.name}"

    def covers_region(self, code: str) -> bool:
        """An administrator covers every region; an operator its jurisdiction."""
        if self.role is Role.ADMINISTRATOR:
            return True
        return self.role is Role.OPERATOR and self.region is not None and is_within(code,
                                                                                    self.region)


class UsersFileError(GridLinkError):
    """The users file is missing or malformed (raised at start-up)."""

    code = "users_file_invalid"


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


@dataclass(frozen=True)
class Directory:
    """The known users by the SHA-256 of their key; ``source`` None = no users file."""

    by_key_hash: Mapping[str, User]
    source: Path | None

    @classmethod
    def load(cls, path: Path | None) -> Directory:
        if path is None:
            return cls(by_key_hash={}, source=None)
        try:
            document = tomllib.loads(path.read_text(encoding="utf-8"))
        except (OSError, tomllib.TOMLDecodeError) as error:
            raise UsersFileError(f"cannot read users file {path}: {error}") from None
        users: dict[str, User] = {}
        for n, entry in enumerate(document.get("users", []), 1):
            digest, user = _user(entry, f"{path} user {n}")
            if digest in users:
                raise UsersFileError(f"{path} user {n} ({user.name}) repeats another's key")
            users[digest] = user
        return cls(by_key_hash=users, source=path)

    def authenticate(self, key: str | None) -> User:
        if self.source is None:
            raise NotAuthenticated("no users are configured (GRIDLINK_USERS_FILE is not set): "
                                   "the API refuses every request but /health and /metrics")
        if not key:
            raise NotAuthenticated("give an API key in the X-API-Key header or as "
                                   "Authorization: Bearer <key>")
        user = self.by_key_hash.get(hash_key(key))
        if user is None:
            raise NotAuthenticated("unknown API key")
        return user


def _user(entry: Any, where: str) -> tuple[str, User]:
    if not isinstance(entry, dict):
        raise UsersFileError(f"{where}: expected a table")
    try:
        name, role, digest = str(entry["name"]), Role(entry["role"]), str(entry["key_sha256"])
    except (KeyError, ValueError) as error:
        raise UsersFileError(f"{where}: needs name, role (operator, department or "
                             f"administrator) and key_sha256 ({error})") from None
    if len(digest) != 64 or any(c not in "0123456789abcdef" for c in digest.lower()):
        raise UsersFileError(f"{where} ({name}): key_sha256 must be 64 hex digits")
    if role is Role.OPERATOR:
        region = str(entry.get("region", ""))
        try:
            own = level_of(region)
        except ValueError as error:
            raise UsersFileError(f"{where} ({name}): {error}") from None
        level = Level(int(entry.get("level", own)))
        if level != own:
            raise UsersFileError(f"{where} ({name}): level {int(level)} is not the level of "
                                 f"region {region} ({int(own)})")
        return digest.lower(), User(name=name, role=role, region=region, level=level)
    if role is Role.DEPARTMENT:
        if not entry.get("department"):
            raise UsersFileError(f"{where} ({name}): a department user needs department")
        return digest.lower(), User(name=name, role=role, department=str(entry["department"]))
    return digest.lower(), User(name=name, role=role)


def write_demo_users(path: Path, *, departments: Iterable[str], operator_regions:
                     Mapping[str, str], admin: str = "admin") -> dict[str, str]:
    """Write a users file with fresh random keys; returns user name → key (shown once).

    ``operator_regions`` maps operator names to their jurisdiction code; each
    department gets a user named ``<code>-desk``.
    """
    keys: dict[str, str] = {}
    blocks: list[str] = []

    def add(name: str, role: Role, **fields: str) -> None:
        keys[name] = key = secrets.token_urlsafe(24)
        lines = [f'name = "{name}"', f'role = "{role}"',
                 *(f'{field} = "{value}"' for field, value in fields.items()),
                 f'key_sha256 = "{hash_key(key)}"']
        blocks.append("[[users]]\n" + "\n".join(lines) + "\n")

    add(admin, Role.ADMINISTRATOR)
    for name, region in operator_regions.items():
        add(name, Role.OPERATOR, region=region)
    for code in departments:
        add(f"{code}-desk", Role.DEPARTMENT, department=code)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("# GridLink API users; keys are stored as SHA-256 digests\n\n"
                    + "\n".join(blocks), encoding="utf-8")
    return keys


# -- dependencies -----------------------------------------------------------------------

_api_key = APIKeyHeader(name="X-API-Key", auto_error=False, description="the user's API key")
_bearer = HTTPBearer(auto_error=False, description="the user's API key as a bearer token")


def current_user(
    request: Request,
    key: Annotated[str | None, Depends(_api_key)],
    bearer: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> User:
    directory: Directory = request.app.state.users
    return directory.authenticate(key or (bearer.credentials if bearer else None))


CurrentUser = Annotated[User, Depends(current_user)]


def operator_or_admin(user: CurrentUser) -> User:
    if user.role is Role.DEPARTMENT:
        raise Forbidden(f"{user.actor} is a department user: this is a command-center action")
    return user


def department_or_admin(user: CurrentUser) -> User:
    if user.role is Role.OPERATOR:
        raise Forbidden(f"{user.actor} is an operator: only the department works on "
                        "its assignments")
    return user


CommandCenterUser = Annotated[User, Depends(operator_or_admin)]
DepartmentUser = Annotated[User, Depends(department_or_admin)]


def require_region(user: User, code: str, what: str) -> None:
    if not user.covers_region(code):
        raise Forbidden(f"{what} lies in region {code}, outside {user.actor}'s jurisdiction "
                        f"({user.region or 'none'})")


def require_department(user: User, department: str, what: str) -> None:
    if user.role is Role.ADMINISTRATOR:
        return
    if user.department != department:
        raise Forbidden(f"{what} belongs to department {department}; {user.actor} acts for "
                        f"{user.department or 'no department'}")


__all__ = [
    "CommandCenterUser",
    "CurrentUser",
    "DepartmentUser",
    "Directory",
    "Role",
    "User",
    "UsersFileError",
    "current_user",
    "hash_key",
    "require_department",
    "require_region",
    "write_demo_users",
]
