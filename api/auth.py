"""Who is calling: users, their credentials and their scope (用户与权限).

Users come from a TOML file (``GRIDLINK_USERS_FILE``). Keys and passwords are
kept only as salted scrypt digests (:mod:`api.credentials`)::

    [[users]]
    name = "wang.li"
    role = "operator"            # 指挥中心值班员: acts on cases within its jurisdiction
    region = "371502"            # jurisdiction code: the region code prefix it covers
    level = 2                    # optional; the region's own level (1 city … 5 grid)
    key_id = "Xq3v9LmA"          # the API key's first 8 characters (finds the user)
    key_scrypt = "scrypt$16384$8$1$…$…"
    password_scrypt = "scrypt$…" # optional: a password for the sign-in page

    [[users]]
    name = "township-371502004-desk"
    role = "department"          # 职能部门: its own department's assignments only …
    department = "township"
    region = "371502004"         # … optional: only those whose unit lies in this jurisdiction
    key_id = "…"
    key_scrypt = "…"

    [[users]]
    name = "wall"
    role = "display"             # 大屏: reads the board (and cases) of its region, acts on nothing
    region = "371500"
    password_scrypt = "…"

    [[users]]
    name = "root"
    role = "administrator"       # everything
    key_sha256 = "…"             # files written before scrypt: still accepted

A request presents its key in ``X-API-Key`` or ``Authorization: Bearer <key>``, or
a browser its session cookie (:mod:`api.sessions`; a request that changes anything
then also carries the CSRF token). Every command a user sends carries
``actor = "<role>:<name>"``.
"""

from __future__ import annotations

import hashlib
import threading
import tomllib
from collections import OrderedDict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any

from fastapi import Depends, Request
from fastapi.security import APIKeyHeader, HTTPAuthorizationCredentials, HTTPBearer

from api import credentials
from api.errors import Forbidden, NotAuthenticated
from api.sessions import COOKIE, CSRF_HEADER, Session, SessionSigner
from streams.errors import GridLinkError
from streams.jurisdiction import is_within, level_of
from streams.records import Level

SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
VERIFIED_KEYS = 4096  # API keys checked once and remembered (by digest) in this process


class Role(StrEnum):
    OPERATOR = "operator"
    DEPARTMENT = "department"
    ADMINISTRATOR = "administrator"
    DISPLAY = "display"


@dataclass(frozen=True)
class User:
    name: str
    role: Role
    region: str | None = None  # operators, displays: their jurisdiction; departments: optional
    level: Level | None = None  # operators: the level they work at
    department: str | None = None  # department users

    @property
    def actor(self) -> str:
        """How the case log names this user (``"operator:wang.li"``)."""
        return f"{self.role}:{self.name}"

    @property
    def acts(self) -> bool:
        """Whether the user may change anything (a display may not)."""
        return self.role is not Role.DISPLAY

    def covers_region(self, code: str) -> bool:
        """An administrator covers every region; an operator and a display their
        jurisdiction; a department user its jurisdiction, or every region without one."""
        if self.role is Role.ADMINISTRATOR:
            return True
        if self.role is Role.DEPARTMENT and self.region is None:
            return True
        return self.region is not None and is_within(code, self.region)

    def sees_unit(self, department: str, unit_region: str) -> bool:
        """A department user sees an assignment of its own department whose unit's
        jurisdiction (the assignment's ``region``) lies within its own."""
        return (self.role is Role.DEPARTMENT and department == self.department
                and self.covers_region(unit_region))


class UsersFileError(GridLinkError):
    """The users file is missing or malformed (raised at start-up)."""

    code = "users_file_invalid"


def hash_key(key: str) -> str:
    """The legacy SHA-256 digest of an API key (``key_sha256``)."""
    return credentials.sha256_hex(key)


@dataclass(frozen=True)
class Account:
    """A user with its stored credentials, as the users file has it."""

    user: User
    key_id: str | None = None
    key_scrypt: str | None = None
    key_sha256: str | None = None
    password_scrypt: str | None = None

    @property
    def fingerprint(self) -> str:
        """Changes when the key or the password changes: ends the user's sessions."""
        stored = "|".join(x or "" for x in (self.key_scrypt, self.key_sha256,
                                            self.password_scrypt))
        return hashlib.sha256(stored.encode()).hexdigest()[:16]

    def check_key(self, key: str) -> bool:
        if self.key_scrypt is not None and credentials.verify_secret(key, self.key_scrypt):
            return True
        return self.key_sha256 is not None and credentials.verify_sha256(key, self.key_sha256)

    def check_secret(self, secret: str) -> bool:
        """The sign-in page's check: the password, or the API key."""
        if self.password_scrypt is not None and credentials.verify_secret(secret,
                                                                          self.password_scrypt):
            return True
        return self.check_key(secret)

    def entry(self) -> dict[str, Any]:
        """The account as a users-file table."""
        u = self.user
        values: dict[str, Any] = {"name": u.name, "role": str(u.role), "region": u.region,
                                  "department": u.department, "key_id": self.key_id,
                                  "key_scrypt": self.key_scrypt, "key_sha256": self.key_sha256,
                                  "password_scrypt": self.password_scrypt}
        return {k: v for k, v in values.items() if v is not None}


@dataclass
class Directory:
    """The known users; ``source`` None = no users file."""

    accounts: Mapping[str, Account]
    source: Path | None
    _by_key_id: dict[str, list[Account]] = field(default_factory=dict)
    _by_sha256: dict[str, Account] = field(default_factory=dict)
    _verified: OrderedDict[str, str] = field(default_factory=OrderedDict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def __post_init__(self) -> None:
        for account in self.accounts.values():
            if account.key_id is not None:
                self._by_key_id.setdefault(account.key_id, []).append(account)
            if account.key_sha256 is not None:
                self._by_sha256[account.key_sha256.lower()] = account

    @classmethod
    def load(cls, path: Path | None) -> Directory:
        if path is None:
            return cls(accounts={}, source=None)
        return cls(accounts=read_accounts(path), source=path)

    @property
    def legacy(self) -> list[str]:
        """Users whose key is still kept as an unsalted SHA-256 digest."""
        return sorted(a.user.name for a in self.accounts.values()
                      if a.key_sha256 is not None and a.key_scrypt is None)

    def _configured(self) -> None:
        if self.source is None:
            raise NotAuthenticated("no users are configured (GRIDLINK_USERS_FILE is not set): "
                                   "the API refuses every request but /health and /metrics")

    def authenticate(self, key: str | None) -> User:
        """The user whose API key this is (a request's ``X-API-Key``)."""
        self._configured()
        if not key:
            raise NotAuthenticated("give an API key in the X-API-Key header or as "
                                   "Authorization: Bearer <key>, or sign in at /login")
        digest = credentials.sha256_hex(key)
        with self._lock:
            name = self._verified.get(digest)
            if name is not None:
                self._verified.move_to_end(digest)
        if name is not None and name in self.accounts:
            return self.accounts[name].user
        account = self._by_sha256.get(digest)
        if account is None:
            account = next((a for a in self._by_key_id.get(credentials.key_id(key), ())
                            if a.key_scrypt is not None
                            and credentials.verify_secret(key, a.key_scrypt)), None)
        if account is None:
            raise NotAuthenticated("unknown API key")
        with self._lock:
            self._verified[digest] = account.user.name
            while len(self._verified) > VERIFIED_KEYS:
                self._verified.popitem(last=False)
        return account.user

    def sign_in(self, name: str, secret: str) -> Account:
        """The sign-in page's check of a user name and its password or API key."""
        self._configured()
        account = self.accounts.get(name)
        if account is None:
            credentials.burn_time()
        elif secret and account.check_secret(secret):
            return account
        raise NotAuthenticated("unknown user name, or a wrong password or key")

    def session_user(self, session: Session) -> User | None:
        account = self.accounts.get(session.user)
        if account is None or account.fingerprint != session.credential:
            return None
        return account.user


def _text(entry: Mapping[str, Any], name: str) -> str | None:
    value = entry.get(name)
    return None if value in (None, "") else str(value)


def read_accounts(path: Path) -> dict[str, Account]:
    try:
        document = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError) as error:
        raise UsersFileError(f"cannot read users file {path}: {error}") from None
    accounts: dict[str, Account] = {}
    seen_keys: dict[str, str] = {}
    for n, entry in enumerate(document.get("users", []), 1):
        account = _account(entry, f"{path} user {n}")
        name = account.user.name
        if name in accounts:
            raise UsersFileError(f"{path} user {n}: the name {name} is taken by another user")
        for stored in (account.key_sha256, account.key_scrypt):
            if stored is not None and stored.lower() in seen_keys:
                raise UsersFileError(f"{path} user {n} ({name}) repeats another's key "
                                     f"({seen_keys[stored.lower()]})")
            if stored is not None:
                seen_keys[stored.lower()] = name
        accounts[name] = account
    return accounts


def _account(entry: Any, where: str) -> Account:
    if not isinstance(entry, dict):
        raise UsersFileError(f"{where}: expected a table")
    try:
        name, role = str(entry["name"]), Role(entry["role"])
    except (KeyError, ValueError) as error:
        raise UsersFileError(f"{where}: needs name, role (operator, department, display or "
                             f"administrator) and key_sha256, key_scrypt or password_scrypt "
                             f"({error})") from None
    stored = {k: _text(entry, k) for k in ("key_id", "key_scrypt", "key_sha256",
                                            "password_scrypt")}
    if not (stored["key_scrypt"] or stored["key_sha256"] or stored["password_scrypt"]):
        raise UsersFileError(f"{where} ({name}): needs name, role and key_sha256, key_scrypt "
                             "or password_scrypt")
    digest = stored["key_sha256"]
    if digest is not None and (len(digest) != 64
                               or any(c not in "0123456789abcdef" for c in digest.lower())):
        raise UsersFileError(f"{where} ({name}): key_sha256 must be 64 hex digits")
    for column in ("key_scrypt", "password_scrypt"):
        if stored[column] is not None:
            try:
                credentials.parse(stored[column] or "")
            except credentials.MalformedDigest as error:
                raise UsersFileError(f"{where} ({name}): {column}: {error}") from None
    if stored["key_scrypt"] is not None and stored["key_id"] is None:
        raise UsersFileError(f"{where} ({name}): key_scrypt needs key_id (the key's first "
                             f"{credentials.KEY_ID_CHARS} characters)")
    user = _user(entry, name, role, where)
    return Account(user=user, key_id=stored["key_id"], key_scrypt=stored["key_scrypt"],
                   key_sha256=digest.lower() if digest else None,
                   password_scrypt=stored["password_scrypt"])


def _region(entry: Mapping[str, Any], name: str, where: str, *, required: bool) -> str | None:
    region = _text(entry, "region")
    if region is None and not required:
        return None
    try:
        level_of(region or "")
    except ValueError as error:
        raise UsersFileError(f"{where} ({name}): {error}") from None
    return region


def _user(entry: Mapping[str, Any], name: str, role: Role, where: str) -> User:
    if role in (Role.OPERATOR, Role.DISPLAY):
        region = _region(entry, name, where, required=True)
        assert region is not None
        own = level_of(region)
        level = Level(int(entry.get("level", own)))
        if level != own:
            raise UsersFileError(f"{where} ({name}): level {int(level)} is not the level of "
                                 f"region {region} ({int(own)})")
        return User(name=name, role=role, region=region, level=level)
    if role is Role.DEPARTMENT:
        if not entry.get("department"):
            raise UsersFileError(f"{where} ({name}): a department user needs department")
        return User(name=name, role=role, department=str(entry["department"]),
                    region=_region(entry, name, where, required=False))
    return User(name=name, role=role)


# -- writing users files ------------------------------------------------------------------


def _toml_string(value: str) -> str:
    escaped = value.replace("\\", "\\\\").replace('"', '\\"')
    return f'"{escaped}"'


def write_accounts(path: Path, accounts: Iterable[Account], *, header: str) -> None:
    """Write a users file (comments of an earlier file are not kept)."""
    blocks = []
    for account in accounts:
        lines = [f"{key} = {_toml_string(str(value))}" for key, value in account.entry().items()]
        blocks.append("[[users]]\n" + "\n".join(lines) + "\n")
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(path.name + ".tmp")
    temporary.write_text(f"# {header}\n\n" + "\n".join(blocks), encoding="utf-8")
    temporary.replace(path)


def keyed_account(user: User) -> tuple[Account, str]:
    """An account for ``user`` with a fresh API key (returned in clear, shown once)."""
    key = credentials.new_key()
    return Account(user=user, key_id=credentials.key_id(key),
                   key_scrypt=credentials.hash_secret(key)), key


@dataclass(frozen=True)
class Desk:
    """A department desk for :func:`write_demo_users`: ``region`` None = city-wide."""

    name: str
    department: str
    region: str | None = None


def write_demo_users(path: Path, *, departments: Iterable[str], operator_regions:
                     Mapping[str, str], desks: Iterable[Desk] = (),
                     displays: Mapping[str, str] | None = None,
                     admin: str = "admin") -> dict[str, str]:
    """Write a users file with fresh random keys; returns user name → key (shown once).

    ``operator_regions`` and ``displays`` map user names to their jurisdiction code;
    each department of ``departments`` gets a city-wide desk named ``<code>-desk``, and
    ``desks`` adds desks with a jurisdiction of their own."""
    users = [User(name=admin, role=Role.ADMINISTRATOR)]
    users += [User(name=name, role=Role.OPERATOR, region=region, level=level_of(region))
              for name, region in operator_regions.items()]
    users += [User(name=name, role=Role.DISPLAY, region=region, level=level_of(region))
              for name, region in (displays or {}).items()]
    users += [User(name=f"{code}-desk", role=Role.DEPARTMENT, department=code)
              for code in departments]
    users += [User(name=d.name, role=Role.DEPARTMENT, department=d.department, region=d.region)
              for d in desks]
    keys: dict[str, str] = {}
    accounts = []
    for user in users:
        account, keys[user.name] = keyed_account(user)
        accounts.append(account)
    write_accounts(path, accounts, header="GridLink users: keys and passwords are kept as "
                   "salted scrypt digests")
    return keys


# -- dependencies -----------------------------------------------------------------------

_api_key = APIKeyHeader(name="X-API-Key", auto_error=False, description="the user's API key")
_bearer = HTTPBearer(auto_error=False, description="the user's API key as a bearer token")


def session_of(request: Request) -> Session | None:
    """The request's valid session, if its cookie carries one."""
    signer: SessionSigner = request.app.state.sessions
    return signer.read(request.cookies.get(COOKIE))


def session_user(request: Request) -> tuple[User, Session] | None:
    """The signed-in user of a browser request, or None."""
    session = session_of(request)
    if session is None:
        return None
    directory: Directory = request.app.state.users
    user = directory.session_user(session)
    return (user, session) if user is not None else None


def current_user(
    request: Request,
    key: Annotated[str | None, Depends(_api_key)],
    bearer: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> User:
    """The caller: by API key, else by session cookie (a change then needs the CSRF
    token in ``X-CSRF-Token``)."""
    directory: Directory = request.app.state.users
    presented = key or (bearer.credentials if bearer else None)
    if presented is None and COOKIE in request.cookies:
        signed_in = session_user(request)
        if signed_in is None:
            raise NotAuthenticated("the session has ended: sign in again at /login")
        user, session = signed_in
        if request.method not in SAFE_METHODS and not request.app.state.sessions.check_csrf(
                session, request.headers.get(CSRF_HEADER)):
            raise Forbidden(f"a change made with a session cookie needs the {CSRF_HEADER} "
                            "header (the page's csrf_token)")
        return user
    return directory.authenticate(presented)


CurrentUser = Annotated[User, Depends(current_user)]


def operator_or_admin(user: CurrentUser) -> User:
    if user.role is Role.DEPARTMENT:
        raise Forbidden(f"{user.actor} is a department user: this is a command-center action")
    if user.role is Role.DISPLAY:
        raise Forbidden(f"{user.actor} is a read-only display: it acts on nothing")
    return user


def department_or_admin(user: CurrentUser) -> User:
    if user.role is Role.OPERATOR:
        raise Forbidden(f"{user.actor} is an operator: only the department works on "
                        "its assignments")
    if user.role is Role.DISPLAY:
        raise Forbidden(f"{user.actor} is a read-only display: it acts on nothing")
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


def require_unit(user: User, department: str, unit_region: str, what: str) -> None:
    """A department user acts only on its department's assignments within its
    jurisdiction (administrators on every one)."""
    require_department(user, department, what)
    if user.role is Role.DEPARTMENT and not user.covers_region(unit_region):
        raise Forbidden(f"{what} is served in region {unit_region}, outside {user.actor}'s "
                        f"jurisdiction ({user.region})")


__all__ = [
    "Account",
    "CommandCenterUser",
    "CurrentUser",
    "DepartmentUser",
    "Desk",
    "Directory",
    "Role",
    "User",
    "UsersFileError",
    "current_user",
    "hash_key",
    "keyed_account",
    "read_accounts",
    "require_department",
    "require_region",
    "require_unit",
    "session_user",
    "write_accounts",
    "write_demo_users",
]
