"""The permissions vocabulary: the only doors an app has to the platform.

An app declares what it needs in ``app.toml``; an organization admin grants it (or
not) at install time; every platform call is checked against *declared ∩ granted*.
A permission is ``kind`` or ``kind:argument``::

    state                         the app's own key-value state for the organization
    identity:read                 look up users and roles of the organization
    dataroom:read                 read documents the caller can read in the data room
    dataroom:write                create and change documents in the data room
    companions:message            send messages to the organization's AI companions
    notifications:send            notify users of the organization
    events:publish:<topic>        publish on a shared event topic (``sales.updated``)
    events:subscribe:<topic>      receive a shared event topic (``*`` wildcards allowed)
    tools:call:<glob>             call MCP tools whose name matches the glob (``crm.*``)
    network:<host>:<port>         open connections to host:port through the egress proxy

    >>> p = parse_permission("network:api.example.com:443")
    >>> (p.kind, p.argument, p.sensitive)
    ('network', 'api.example.com:443', True)
"""

from __future__ import annotations

import fnmatch
import ipaddress
import re
from dataclasses import dataclass
from typing import Final

_TOPIC_RE: Final = re.compile(r"^[a-z0-9*][a-z0-9._*-]{0,127}$")
_TOOL_GLOB_RE: Final = re.compile(r"^[a-z0-9*?][a-z0-9._*?-]{0,127}$")
_HOST_LABEL_RE: Final = re.compile(r"^(?!-)[a-z0-9-]{1,63}(?<!-)$")


@dataclass(frozen=True)
class Kind:
    name: str
    description: str
    argument: str | None = None  # what the argument is called, None when it takes none
    sensitive: bool = False  # sends a new version to manual review and needs explicit consent


KINDS: Final[dict[str, Kind]] = {
    k.name: k
    for k in (
        Kind("state", "keep persistent key-value state for each organization"),
        Kind("identity:read", "look up users and roles of the organization"),
        Kind("dataroom:read", "read documents in the data room the user can read"),
        Kind("dataroom:write", "create and change documents in the data room", sensitive=True),
        Kind(
            "companions:message",
            "send messages to the organization's AI companions",
            sensitive=True,
        ),
        Kind("notifications:send", "send notifications to users of the organization"),
        Kind("events:publish", "publish events on a shared topic", argument="topic"),
        Kind("events:subscribe", "receive events of a shared topic", argument="topic"),
        Kind("tools:call", "call MCP tools whose names match a pattern", argument="glob"),
        Kind(
            "network", "open outbound connections to a host", argument="host:port", sensitive=True
        ),
    )
}


class InvalidPermission(ValueError):
    """A permission string outside the vocabulary; the message lists what is allowed."""


@dataclass(frozen=True, order=True)
class Permission:
    kind: str
    argument: str = ""

    def __str__(self) -> str:
        return f"{self.kind}:{self.argument}" if self.argument else self.kind

    @property
    def sensitive(self) -> bool:
        return KINDS[self.kind].sensitive

    @property
    def description(self) -> str:
        base = KINDS[self.kind].description
        return f"{base}: {self.argument}" if self.argument else base

    def covers(self, other: Permission) -> bool:
        """True when holding ``self`` allows what ``other`` asks for (globs and wildcards)."""
        if self.kind != other.kind:
            return False
        if self.argument == other.argument:
            return True
        return fnmatch.fnmatchcase(other.argument, self.argument)


def _vocabulary() -> str:
    names = [f"{k.name}:<{k.argument}>" if k.argument else k.name for k in KINDS.values()]
    return ", ".join(names)


def _check_host(host: str) -> None:
    try:
        ipaddress.ip_address(host.strip("[]"))
        return
    except ValueError:
        pass
    labels = host.split(".")
    if labels and labels[0] == "*":  # *.example.com: any subdomain
        labels = labels[1:]
    if len(labels) < 2 or not all(_HOST_LABEL_RE.match(label) for label in labels):
        raise InvalidPermission(
            f"{host!r} is not a host name or IP address; write e.g. api.example.com, "
            "*.example.com or 203.0.113.7"
        )


def _check_network(argument: str) -> str:
    host, sep, port = argument.rpartition(":")
    if not sep or not host:
        raise InvalidPermission(
            f"network permission {argument!r} needs a host and a port, "
            "e.g. network:api.example.com:443"
        )
    host = host.lower()
    _check_host(host)
    if not port.isdigit() or not 1 <= int(port) <= 65535:
        raise InvalidPermission(f"port {port!r} must be a number from 1 to 65535")
    return f"{host}:{int(port)}"


def parse_permission(text: str) -> Permission:
    """Parse and normalize one permission string, or raise with the vocabulary."""
    if not isinstance(text, str) or not text.strip():
        raise InvalidPermission(f"a permission must be a non-empty string; known: {_vocabulary()}")
    text = text.strip()
    if text in KINDS and KINDS[text].argument is None:
        return Permission(text)
    if text.startswith("network:"):
        return Permission("network", _check_network(text[len("network:") :]))
    for kind in KINDS.values():
        if kind.argument is None or not text.startswith(kind.name + ":"):
            continue
        argument = text[len(kind.name) + 1 :]
        if kind.name.startswith("events:") and not _TOPIC_RE.match(argument):
            raise InvalidPermission(
                f"topic {argument!r} must be lowercase letters, digits, '.', '_', '-' or '*' "
                "(up to 128), e.g. events:publish:sales.updated"
            )
        if kind.name == "tools:call" and not _TOOL_GLOB_RE.match(argument):
            raise InvalidPermission(
                f"tool pattern {argument!r} must be lowercase letters, digits, '.', '_', '-' "
                "and the wildcards '*' or '?', e.g. tools:call:crm.*"
            )
        return Permission(kind.name, argument)
    if text in KINDS:  # a kind that needs an argument, given without one
        kind = KINDS[text]
        raise InvalidPermission(f"{text!r} needs a {kind.argument}, e.g. {text}:<{kind.argument}>")
    raise InvalidPermission(f"unknown permission {text!r}; known: {_vocabulary()}")
