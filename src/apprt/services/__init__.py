"""The platform services apps reach through their platform API socket.

* :mod:`apprt.services.state`: persistent key-value state per app and organization;
* :mod:`apprt.services.audit`: the audit log of every platform call;
* :mod:`apprt.services.api`: the platform API served on each instance's ``platform.sock``
  (caller identified by the socket, permissions, rate limits, audit);
* :mod:`apprt.services.backup`: state backups and restore;
* :mod:`apprt.services.views`: the component (routes, lifespan); see ``docs/services.md``.
"""
