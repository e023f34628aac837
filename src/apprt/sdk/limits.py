"""The rules of state keys and values, shared by the SDK and the platform (stdlib only).

* a **key** is text of 1 to 256 bytes in UTF-8, without control characters
  (``"notes/0001"``, ``"user:ada:prefs"``); keys sort by code point, so a prefix
  selects a contiguous range;
* a **value** is any JSON value whose compact encoding (``json.dumps(v,
  separators=(",", ":"), ensure_ascii=False)``) is at most 256 KiB in UTF-8; NaN and
  infinities are not JSON and are refused;
* a **version** is a positive integer that grows with every write of the app's state
  for an organization (never reused, even after a delete); ``0`` means "absent".
"""

from __future__ import annotations

import json
from typing import Any

MAX_KEY_BYTES = 256
MAX_VALUE_BYTES = 256 * 1024
#: Integers :func:`apprt.sdk.state.increment` keeps to (signed 64 bits, like most stores).
MAX_INT = 2**63 - 1
MIN_INT = -(2**63)
#: Most entries one list call returns.
MAX_LIST_LIMIT = 1000


class LimitError(ValueError):
    """A key or value outside the rules; the message says which rule and how to fix it."""

    def __init__(self, message: str, *, field: str = "", hint: str = "") -> None:
        super().__init__(message)
        self.field = field
        self.hint = hint


def check_key(key: object, *, field: str = "key", allow_empty: bool = False) -> str:
    """``key`` if it is a valid state key (or, ``allow_empty``, a prefix), else LimitError."""
    if not isinstance(key, str):
        raise LimitError(
            f"{field} must be a string, not {type(key).__name__}",
            field=field,
            hint='use text keys such as "notes/0001"',
        )
    if not key and not allow_empty:
        raise LimitError(f"{field} is empty", field=field, hint="use a non-empty key")
    try:
        size = len(key.encode("utf-8"))
    except UnicodeEncodeError:
        raise LimitError(
            f"{field} is not valid Unicode text (lone surrogate)",
            field=field,
            hint="use keys that encode to UTF-8",
        ) from None
    if size > MAX_KEY_BYTES:
        raise LimitError(
            f"{field} is {size} bytes in UTF-8, more than {MAX_KEY_BYTES}",
            field=field,
            hint="use a shorter key; put long data in the value",
        )
    if any(ord(ch) < 0x20 or ord(ch) == 0x7F for ch in key):
        raise LimitError(
            f"{field} contains a control character",
            field=field,
            hint="use printable characters in keys",
        )
    return key


def encode_value(value: Any, *, field: str = "value") -> str:
    """The compact JSON text of ``value`` if it is JSON within the size limit."""
    try:
        text = json.dumps(value, separators=(",", ":"), ensure_ascii=False, allow_nan=False)
    except (TypeError, ValueError, RecursionError) as exc:
        raise LimitError(
            f"{field} is not JSON: {exc}",
            field=field,
            hint="store dicts, lists, strings, numbers, booleans or None",
        ) from None
    size = len(text.encode("utf-8"))
    if size > MAX_VALUE_BYTES:
        raise LimitError(
            f"{field} is {size} bytes as JSON, more than {MAX_VALUE_BYTES} (256 KiB)",
            field=field,
            hint="split it over several keys",
        )
    return text


def check_int(value: object, *, field: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise LimitError(
            f"{field} must be an integer, not {type(value).__name__}",
            field=field,
            hint="pass a whole number",
        )
    if not MIN_INT <= value <= MAX_INT:
        raise LimitError(
            f"{field} is outside the signed 64-bit range",
            field=field,
            hint=f"keep integers between {MIN_INT} and {MAX_INT}",
        )
    return value


def prefix_successor(prefix: str) -> str | None:
    """The smallest string greater than every string starting with ``prefix``.

    ``None`` when there is none (empty prefix, or only U+10FFFF characters). Strings
    compare by code point, which is also UTF-8 byte order. Surrogates are skipped.

    >>> prefix_successor("notes/")
    'notes0'
    """
    chars = list(prefix)
    while chars:
        code = ord(chars.pop()) + 1
        if code == 0xD800:
            code = 0xE000
        if code <= 0x10FFFF:
            return "".join(chars) + chr(code)
    return None
