"""The app manifest, ``app.toml``: what an app is, needs and may do.

Workflow: a developer writes ``app.toml`` (``apprt app init`` scaffolds one);
:func:`load_manifest` reads and validates it, listing every problem at once;
the registry, installer and runtime then read typed fields from the
:class:`Manifest`. The format is documented in ``docs/manifest.md``::

    >>> from apprt.manifest import parse_manifest
    >>> m = parse_manifest('''
    ... id = "com.example.hello"
    ... name = "Hello"
    ... version = "1.0.0"
    ... description = "Says hello."
    ... publisher = "example"
    ... license = "MIT"
    ... platform = "^1.0"
    ... permissions = ["state"]
    ... [backend]
    ... entry = "hello.main:app"
    ... ''')
    >>> m.id, str(m.semver), [str(p) for p in m.parsed_permissions]
    ('com.example.hello', '1.0.0', ['state'])
"""

from apprt.manifest.loader import MANIFEST_FILENAME, load_manifest, parse_manifest
from apprt.manifest.models import (
    Backend,
    Frontend,
    Manifest,
    Resources,
    SharedDependency,
    Tenancy,
    Tool,
    config_defaults,
)
from apprt.manifest.permissions import KINDS, InvalidPermission, Permission, parse_permission
from apprt.manifest.schema import manifest_json_schema

__all__ = [
    "KINDS",
    "MANIFEST_FILENAME",
    "Backend",
    "Frontend",
    "InvalidPermission",
    "Manifest",
    "Permission",
    "Resources",
    "SharedDependency",
    "Tenancy",
    "Tool",
    "config_defaults",
    "load_manifest",
    "manifest_json_schema",
    "parse_manifest",
    "parse_permission",
]
