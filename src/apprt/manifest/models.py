"""The ``app.toml`` schema as pydantic models.

Every field is documented here once; the JSON Schema (``apprt schema manifest``)
and ``docs/manifest.md`` are derived from it. Unknown fields are refused rather
than ignored, so a typo never silently drops a limit or a permission.
"""

from __future__ import annotations

import re
from enum import StrEnum
from typing import Annotated, Any, Literal

from jsonschema import Draft202012Validator
from jsonschema.exceptions import SchemaError
from jsonschema.exceptions import ValidationError as JsonSchemaValidationError
from packaging.licenses import InvalidLicenseExpression, canonicalize_license_expression
from packaging.requirements import InvalidRequirement, Requirement
from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    model_validator,
)

from apprt.manifest.permissions import Permission, parse_permission
from apprt.versioning import SEMVER_PATTERN, Version, parse_range, parse_version

APP_ID_PATTERN = r"^[a-z][a-z0-9-]{0,62}(\.[a-z0-9][a-z0-9-]{0,62}){1,7}$"
ENTRY_PATTERN = r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*:[A-Za-z_][A-Za-z0-9_]*$"
PUBLISHER_PATTERN = r"^[a-z0-9](?:[a-z0-9-]{0,38}[a-z0-9])?$"
TOOL_NAME_PATTERN = r"^[a-z][a-z0-9_-]*(\.[a-z][a-z0-9_-]*)*$"
_FRONTEND_PATH_RE = re.compile(r"^(?!/)(?!.*(^|/)\.\.?(/|$))[A-Za-z0-9._/-]+$")


def _check_version(value: str) -> str:
    parse_version(value)
    return value


def _check_range(value: str) -> str:
    parse_range(value)
    return value


def _check_license(value: str) -> str:
    try:
        return str(canonicalize_license_expression(value))
    except InvalidLicenseExpression as exc:
        raise ValueError(
            f"{exc}; use an SPDX license expression such as MIT, Apache-2.0, "
            "'MIT OR Apache-2.0', or LicenseRef-Proprietary"
        ) from None


def _check_pin(value: str) -> str:
    try:
        req = Requirement(value)
    except InvalidRequirement as exc:
        raise ValueError(f"{value!r} is not a valid requirement: {exc}") from None
    specs = list(req.specifier)
    if req.url or len(specs) != 1 or specs[0].operator != "==" or "*" in specs[0].version:
        raise ValueError(
            f"{value!r} must pin one exact version so installs are reproducible and offline, "
            f"e.g. '{req.name}==1.2.3'"
        )
    return value


def _check_relative_path(value: str) -> str:
    if not _FRONTEND_PATH_RE.match(value):
        raise ValueError(
            f"{value!r} must be a relative path inside the package using letters, digits, "
            "'.', '_', '-' and '/', without '..'"
        )
    return value


def _check_json_schema(value: dict[str, Any]) -> dict[str, Any]:
    try:
        Draft202012Validator.check_schema(value)
    except SchemaError as exc:
        where = "/".join(str(p) for p in exc.path)
        raise ValueError(
            f"not a valid JSON Schema (2020-12) at '{where or '<root>'}': {exc.message}"
        ) from None
    return value


AppId = Annotated[
    str,
    Field(
        pattern=APP_ID_PATTERN,
        max_length=128,
        description="Reverse-DNS identifier, lowercase: com.example.sales-dashboard",
        examples=["com.example.sales-dashboard"],
    ),
]
SemVer = Annotated[
    str,
    Field(pattern=SEMVER_PATTERN, description="SemVer 2.0 version", examples=["1.4.0"]),
    AfterValidator(_check_version),
]
VersionRange = Annotated[
    str,
    Field(description="npm-style range: ^1.2.0, ~1.4, >=1.0.0 <2.0.0, 1.x || 2.x", max_length=256),
    AfterValidator(_check_range),
]
EntryPoint = Annotated[
    str,
    Field(pattern=ENTRY_PATTERN, description="'module:attribute' inside backend/"),
]
RelativePath = Annotated[str, Field(max_length=255), AfterValidator(_check_relative_path)]
JsonSchema = Annotated[dict[str, Any], AfterValidator(_check_json_schema)]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, str_strip_whitespace=True)


class Tenancy(StrEnum):
    isolated = "isolated"  # one instance per organization
    shared = "shared"  # one deployment serving many organizations


class Isolation(StrEnum):
    shadow = "shadow"  # mounted in a Shadow DOM root inside the shell
    iframe = "iframe"  # sandboxed iframe without allow-same-origin, for untrusted apps


class Hooks(_Model):
    """Functions (``module:function`` in backend/) the platform calls around lifecycle changes."""

    install: EntryPoint | None = Field(None, description="Called once after first install")
    upgrade: EntryPoint | None = Field(None, description="Called with the previous version")
    uninstall: EntryPoint | None = Field(None, description="Called before data is removed")


class Backend(_Model):
    """The app's server side: an ASGI application run in the app's sandbox."""

    entry: EntryPoint = Field(description="ASGI application as 'module:attribute' inside backend/")
    requirements: list[Annotated[str, AfterValidator(_check_pin)]] = Field(
        default_factory=list,
        description="Exact pins (name==version) of every Python distribution the backend "
        "imports, transitive ones included; vendored as wheels in the package",
    )
    health: str = Field(
        "/healthz", pattern=r"^/[\x21-\x7e]*$", description="GET path answering 2xx when healthy"
    )
    hooks: Hooks = Field(default_factory=Hooks)

    @property
    def module(self) -> str:
        return self.entry.split(":", 1)[0]


class Bundle(_Model):
    """A copy of a shared dependency shipped in frontend/, used when negotiation fails."""

    version: SemVer
    path: RelativePath = Field(description="ES module path inside frontend/")


class SharedDependency(_Model):
    version: VersionRange = Field(description="Range of versions the frontend works with")
    singleton: bool = Field(False, description="Only one copy may run in the page")
    strict: bool = Field(
        False, description="With singleton: refuse to load rather than use a version out of range"
    )
    bundle: Bundle | None = Field(None, description="The app's own copy, when it ships one")

    @model_validator(mode="after")
    def _bundle_in_range(self) -> SharedDependency:
        if self.bundle is not None and not parse_range(self.version).contains(self.bundle.version):
            raise ValueError(
                f"bundle version {self.bundle.version} is outside the declared range "
                f"{self.version!r}; ship a copy that satisfies it"
            )
        return self


class Frontend(_Model):
    """The app's browser side: an ES module exporting ``mount(el, ctx)`` and ``unmount(el)``."""

    entry: RelativePath = Field("index.js", description="ES module inside frontend/")
    isolation: Isolation = Field(
        Isolation.shadow, description="shadow, or iframe for untrusted apps"
    )
    shared: dict[
        Annotated[str, Field(pattern=r"^(@[a-z0-9][a-z0-9._-]*/)?[a-z0-9][a-z0-9._-]*$")],
        SharedDependency,
    ] = Field(default_factory=dict, description="npm packages the shell may share between apps")

    @model_validator(mode="after")
    def _entry_is_module(self) -> Frontend:
        if not self.entry.endswith((".js", ".mjs")):
            raise ValueError(f"entry {self.entry!r} must be an ES module ending in .js or .mjs")
        return self


class Resources(_Model):
    """Hard limits enforced by the sandbox and the gateway."""

    memory_mb: int = Field(256, ge=16, le=65536, description="Memory limit in MiB")
    cpu: float = Field(0.5, gt=0, le=64, description="CPU share in cores (0.5 = half a core)")
    storage_mb: int = Field(100, ge=0, le=1048576, description="Data directory quota in MiB")
    bandwidth_kbps: int = Field(1024, ge=0, description="Egress bandwidth in kbit/s")
    max_concurrency: int = Field(32, ge=1, le=10000, description="Requests handled at once")
    request_timeout_s: float = Field(30, gt=0, le=3600, description="Per-request time limit")
    max_processes: int = Field(32, ge=1, le=4096, description="Processes and threads at once")


class PermissionRequest(_Model):
    """A permission with the reason shown to the admin asked to consent."""

    permission: str
    reason: str = Field("", max_length=500)

    @model_validator(mode="after")
    def _normalize(self) -> PermissionRequest:
        normalized = str(parse_permission(self.permission))
        object.__setattr__(self, "permission", normalized)
        return self

    @property
    def parsed(self) -> Permission:
        return parse_permission(self.permission)


def _permission_from_string(value: Any) -> Any:
    return {"permission": value} if isinstance(value, str) else value


class Tool(_Model):
    """An MCP tool the app exposes; the platform calls ``POST <backend>{path}`` with the input."""

    name: str = Field(pattern=TOOL_NAME_PATTERN, max_length=128)
    description: str = Field(min_length=1, max_length=1000)
    input_schema: JsonSchema = Field(default_factory=lambda: {"type": "object"})
    path: str = Field(pattern=r"^/[\x21-\x7e]*$", description="Backend route called for the tool")


class Manifest(_Model):
    """The whole ``app.toml``."""

    manifest_version: Literal[1] = Field(1, description="Version of this schema")
    id: AppId
    name: str = Field(min_length=1, max_length=64)
    version: SemVer
    description: str = Field(min_length=1, max_length=500)
    publisher: str = Field(pattern=PUBLISHER_PATTERN, description="Publisher account name")
    license: Annotated[str, AfterValidator(_check_license)] = Field(
        description="SPDX license expression"
    )
    homepage: str | None = Field(None, pattern=r"^https?://\S+$")
    tags: list[Annotated[str, Field(pattern=r"^[a-z0-9][a-z0-9-]{0,31}$")]] = Field(
        default_factory=list, max_length=10
    )
    icon: RelativePath | None = Field(None, description="icon.png or icon.svg in the package")
    platform: VersionRange = Field(description="Range of the platform API versions the app needs")
    tenancy: Tenancy = Tenancy.isolated
    backend: Backend | None = None
    frontend: Frontend | None = None
    permissions: list[Annotated[PermissionRequest, BeforeValidator(_permission_from_string)]] = (
        Field(default_factory=list, description="'state' or {permission = 'state', reason = '...'}")
    )
    resources: Resources = Field(default_factory=Resources)
    dependencies: dict[AppId, VersionRange] = Field(
        default_factory=dict, description="Other apps this one needs: app id = version range"
    )
    config: JsonSchema = Field(
        default_factory=lambda: {"type": "object", "properties": {}},
        description="JSON Schema of the per-organization settings",
    )
    tools: list[Tool] = Field(default_factory=list)

    @model_validator(mode="after")
    def _consistent(self) -> Manifest:
        errors: list[str] = []
        if self.backend is None and self.frontend is None:
            errors.append("an app needs a [backend], a [frontend], or both")
        if self.tools and self.backend is None:
            errors.append("[[tools]] are served by the backend: add a [backend] section")
        if self.id in self.dependencies:
            errors.append(f"the app cannot depend on itself ({self.id})")
        seen: set[str] = set()
        for request in self.permissions:
            if request.permission in seen:
                errors.append(f"permission {request.permission!r} is declared twice")
            seen.add(request.permission)
        tool_names = [t.name for t in self.tools]
        for name in sorted({n for n in tool_names if tool_names.count(n) > 1}):
            errors.append(f"tool {name!r} is declared twice")
        if self.config.get("type", "object") != "object":
            errors.append("config must describe an object: set type = 'object'")
        else:
            for name, prop in self.config.get("properties", {}).items():
                if not isinstance(prop, dict) or "default" not in prop:
                    continue
                try:
                    Draft202012Validator(prop).validate(prop["default"])
                except JsonSchemaValidationError as exc:
                    errors.append(f"config.properties.{name}.default is invalid: {exc.message}")
        if errors:
            raise ValueError("; ".join(errors))
        return self

    @property
    def semver(self) -> Version:
        return parse_version(self.version)

    @property
    def parsed_permissions(self) -> list[Permission]:
        return [r.parsed for r in self.permissions]

    @property
    def sensitive_permissions(self) -> list[Permission]:
        return [p for p in self.parsed_permissions if p.sensitive]


def config_defaults(schema: dict[str, Any]) -> dict[str, Any]:
    """The settings an organization starts with: each top-level property's ``default``."""
    properties = schema.get("properties", {})
    return {
        name: prop["default"]
        for name, prop in properties.items()
        if isinstance(prop, dict) and "default" in prop
    }
