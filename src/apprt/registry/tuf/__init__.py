"""The registry as a TUF repository (see ``docs/tuf.md``).

``repository``: :class:`~apprt.registry.tuf.repository.TufRepository`, which signs and
stores metadata; ``keys``: the Ed25519 key files; ``config``: ``APPRT_TUF_*`` settings;
``component``: the ``/tuf/`` routes and the lifespan that bootstraps the repository and
keeps its timestamp fresh; ``models``: its tables; ``cli``: ``apprt registry tuf``.
"""
