"""Access tokens of the network API: two roles, kept in a file of the state directory.

The file (TOML, mode 0600) lists the tokens of each role::

    read = ["…"]      # GET routes and the WebSocket streams
    control = ["…"]   # every route (POST included)

A simulated meter creates it with fresh random tokens when it is missing; a real meter needs it
written by its operator. The UNIX socket needs no token (its file mode is the access control).
Tokens are compared in constant time and never logged.
"""

from __future__ import annotations

import enum
import hmac
import os
import secrets
import tomllib
from dataclasses import dataclass
from pathlib import Path


class Role(enum.Enum):
    """What a token allows: ``read`` (GET, streams) or ``control`` (everything)."""

    READ = "read"
    CONTROL = "control"

    def allows(self, needed: Role) -> bool:
        """True when a holder of this role may use a route that needs ``needed``."""
        return self is Role.CONTROL or needed is Role.READ


class TokenFileError(Exception):
    """The token file is missing, unreadable, too open or malformed."""


@dataclass(frozen=True)
class Tokens:
    """The tokens of each role."""

    read: tuple[str, ...]
    control: tuple[str, ...]

    def role_of(self, presented: str) -> Role | None:
        """The role of ``presented`` (None for an unknown token); every token is compared, in
        constant time, whatever matches."""
        found: Role | None = None
        for role, tokens in ((Role.CONTROL, self.control), (Role.READ, self.read)):
            for token in tokens:
                if hmac.compare_digest(token.encode(), presented.encode()) and found is None:
                    found = role
        return found

    def to_toml(self) -> str:
        """The file's text."""
        def quoted(tokens: tuple[str, ...]) -> str:
            return ", ".join(f'"{t}"' for t in tokens)
        return (f"# meterd network API tokens (keep this file secret, mode 0600)\n"
                f"read = [{quoted(self.read)}]\ncontrol = [{quoted(self.control)}]\n")


MIN_TOKEN_CHARS = 16


def new_tokens() -> Tokens:
    """One fresh random token per role (32 URL-safe characters each)."""
    return Tokens(read=(secrets.token_urlsafe(24),), control=(secrets.token_urlsafe(24),))


def load_tokens(path: Path) -> Tokens:
    """Read the token file; TokenFileError when it is missing, readable by others, or malformed."""
    try:
        mode = path.stat().st_mode
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise TokenFileError(f"API token file {path}: {exc.strerror or exc}") from None
    if mode & 0o077:
        raise TokenFileError(f"API token file {path} is readable by others (mode {mode & 0o777:04o}; expected 0600)")
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise TokenFileError(f"API token file {path}: {exc}") from None
    unknown = set(data) - {"read", "control"}
    if unknown:
        raise TokenFileError(f"API token file {path}: unknown key(s) {sorted(unknown)} (expected read, control)")
    roles: dict[str, tuple[str, ...]] = {}
    for name in ("read", "control"):
        value = data.get(name, [])
        if not isinstance(value, list) or not all(isinstance(t, str) for t in value):
            raise TokenFileError(f"API token file {path}: {name} must be a list of strings")
        short = [t for t in value if len(t) < MIN_TOKEN_CHARS]
        if short:
            raise TokenFileError(f"API token file {path}: a {name} token is shorter than {MIN_TOKEN_CHARS} characters")
        roles[name] = tuple(value)
    if not roles["read"] and not roles["control"]:
        raise TokenFileError(f"API token file {path} lists no token")
    return Tokens(read=roles["read"], control=roles["control"])


def ensure_tokens(path: Path, create: bool) -> Tokens:
    """The tokens of ``path``; when it is missing and ``create`` (a simulated meter), a file
    with fresh tokens is written first (mode 0600 from the start)."""
    if create and not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(new_tokens().to_toml())
    return load_tokens(path)
