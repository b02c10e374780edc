"""The Subsonic protocol: parameters, authentication, errors, and the XML or JSON envelope.

Every answer is a ``subsonic-response`` with ``status`` ``ok`` or ``failed`` (HTTP 200 either way, as
Subsonic servers answer); a failure carries a Subsonic error code and a one-line message. Authentication is
the Subsonic one: ``u`` with ``t`` (the MD5 of the password and the salt ``s``) or with ``p`` (the password,
plain or ``enc:`` and its hex). ``f=json`` (or ``jsonp`` with ``callback``) answers JSON, anything else XML.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import re
import xml.etree.ElementTree as ET
from pathlib import Path

from ...errors import SoundalikeError

API_VERSION = "1.16.1"
SERVER_TYPE = "soundalike"
XMLNS = "http://subsonic.org/restapi"
USER_ENV, PASSWORD_ENV = "SOUNDALIKE_SUBSONIC_USER", "SOUNDALIKE_SUBSONIC_PASSWORD"

# Subsonic's error codes
GENERIC, MISSING, WRONG_CREDENTIALS, NOT_AUTHORISED, NOT_FOUND = 0, 10, 40, 50, 70


class SubsonicError(Exception):
    """A request answered with a Subsonic error (code and one line)."""

    def __init__(self, code: int, message: str):
        super().__init__(message)
        self.code = code


def not_found(what: str) -> SubsonicError:
    return SubsonicError(NOT_FOUND, f"{what} not found")


# ------------------------------------------------------------------------------------------------ credentials


def credentials(path: str | os.PathLike | None = None, env=os.environ) -> tuple[str, str] | None:
    """The Subsonic user and password: from the file ``path`` (one line ``user:password``), else from the
    SOUNDALIKE_SUBSONIC_USER and SOUNDALIKE_SUBSONIC_PASSWORD variables; None when neither is set (the Subsonic
    API is then off). There is no default password."""
    if path is not None:
        try:
            line = next((ln.strip() for ln in Path(path).read_text(encoding="utf-8").splitlines() if ln.strip()), "")
        except (OSError, UnicodeDecodeError) as err:
            raise SoundalikeError(f"{path}: cannot read the Subsonic credentials ({err.strerror or err})") from None
        user, sep, password = line.partition(":")
        if not sep or not user or not password:
            raise SoundalikeError(f"{path}: the Subsonic credentials must be one line 'user:password'")
        return user, password
    user, password = env.get(USER_ENV), env.get(PASSWORD_ENV)
    if not user and not password:
        return None
    if not user or not password:
        raise SoundalikeError(f"set both {USER_ENV} and {PASSWORD_ENV} for the Subsonic API (or neither, to leave it off)")
    return user, password


def authenticate(params: "Params", user: str, password: str) -> None:
    """Check a request's Subsonic credentials (raises error 10 when missing, 40 when wrong)."""
    given_user = params.text("u")
    token, salt, plain = params.optional("t"), params.optional("s"), params.optional("p")
    if token is not None and salt is not None:
        expected = hashlib.md5((password + salt).encode("utf-8")).hexdigest()
        ok = hmac.compare_digest(token.lower().encode(), expected.encode())
    elif plain is not None:
        if plain.startswith("enc:"):
            try:
                plain = bytes.fromhex(plain[4:]).decode("utf-8")
            except ValueError:
                raise SubsonicError(WRONG_CREDENTIALS, "wrong username or password") from None
        ok = hmac.compare_digest(plain.encode(), password.encode())
    else:
        raise SubsonicError(MISSING, "required parameter is missing: t and s, or p")
    if not (ok and hmac.compare_digest(given_user.encode(), user.encode())):
        raise SubsonicError(WRONG_CREDENTIALS, "wrong username or password")


# ------------------------------------------------------------------------------------------------ parameters


class Params:
    """A request's parameters (query string and form body), read the Subsonic way: a parameter given twice is
    read from its first value, except where a list is asked for."""

    def __init__(self, items):
        self._items: dict[str, list[str]] = {}
        for key, value in items:
            self._items.setdefault(key, []).append(value)

    def optional(self, name: str) -> str | None:
        values = self._items.get(name)
        return values[0] if values else None

    def text(self, name: str) -> str:
        value = self.optional(name)
        if value is None or value == "":
            raise SubsonicError(MISSING, f"required parameter is missing: {name}")
        return value

    def all(self, name: str) -> list[str]:
        return list(self._items.get(name, []))

    def integer(self, name: str, default: int | None = None, *, low: int = 0, high: int | None = None) -> int:
        """An integer parameter, clamped to [low, high] (a huge count asks for the most there is)."""
        value = self.optional(name)
        if value is None or value == "":
            if default is None:
                raise SubsonicError(MISSING, f"required parameter is missing: {name}")
            return default
        try:
            number = int(value.strip())
        except ValueError:
            raise SubsonicError(GENERIC, f"parameter {name} must be a whole number, not {value[:40]!r}") from None
        number = max(low, number)
        return number if high is None else min(high, number)

    def flag(self, name: str, default: bool = False) -> bool:
        value = self.optional(name)
        return default if value is None else value.strip().lower() in ("true", "1", "yes")


# ------------------------------------------------------------------------------------------------ envelope

_XML_BAD = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff]")


def envelope(payload: dict | None = None, error: SubsonicError | None = None) -> dict:
    body = {"status": "failed" if error else "ok", "version": API_VERSION, "type": SERVER_TYPE,
            "serverVersion": _version(), "openSubsonic": True}
    if error is not None:
        body["error"] = {"code": error.code, "message": str(error)}
    body.update(payload or {})
    return body


def _version() -> str:
    try:
        from importlib.metadata import version

        return version("soundalike")
    except Exception:  # (running from a source tree that is not installed)
        return "0"


def _xml_value(value) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return repr(round(value, 6))
    return _XML_BAD.sub("", str(value))


def _xml(parent: ET.Element, name: str, value) -> None:
    if isinstance(value, list):
        for item in value:
            _xml(parent, name, item)
        return
    node = ET.SubElement(parent, name)
    if isinstance(value, dict):
        for key, v in value.items():
            if v is None:
                continue
            if key == "value":  # an element's text (a genre's name), its other fields attributes
                node.text = _xml_value(v)
            elif isinstance(v, (dict, list)):
                _xml(node, key, v)
            else:
                node.set(key, _xml_value(v))
    elif value is not None:
        node.text = _xml_value(value)


def render(body: dict, fmt: str | None, callback: str | None = None) -> tuple[bytes, str]:
    """The response body as (bytes, media type): JSON for ``f=json``, JSONP for ``f=jsonp``, else XML."""
    if fmt in ("json", "jsonp"):
        text = json.dumps({"subsonic-response": _drop_none(body)}, ensure_ascii=False, allow_nan=False)
        if fmt == "jsonp" and callback and re.fullmatch(r"[A-Za-z_$][\w$.]{0,63}", callback):
            return f"{callback}({text});".encode(), "application/javascript"
        return text.encode(), "application/json"
    root = ET.Element("subsonic-response", {"xmlns": XMLNS})
    for key, v in body.items():
        if v is None:
            continue
        if isinstance(v, (dict, list)):
            _xml(root, key, v)
        else:
            root.set(key, _xml_value(v))
    return b'<?xml version="1.0" encoding="UTF-8"?>' + ET.tostring(root, encoding="utf-8"), "text/xml; charset=utf-8"


def _drop_none(value):
    if isinstance(value, dict):
        return {k: _drop_none(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [_drop_none(v) for v in value]
    if isinstance(value, float) and value != value:
        return None
    return value
