"""apprt: the app runtime of an AI-companions platform.

Organizations install third-party apps at run time; apprt carries an app from a
developer's directory (``apprt app pack``) through the registry, into a sandbox,
and in front of users. See ``README.md`` for the two set-up commands and
``docs/`` for the formats.
"""

__version__ = "0.1.0"

#: The version of the platform API that apps declare compatibility with in the
#: manifest's ``platform`` range. Bumped on every change apps can observe.
PLATFORM_API_VERSION = "1.0.0"

__all__ = ["PLATFORM_API_VERSION", "__version__"]
