"""The gateway: ``/apps/{org}/{app id}/...`` reverse-proxied to the app's instance.

* :mod:`apprt.gateway.proxy`: the ASGI proxy (HTTP/1.1 and WebSocket), limits, identity;
* :mod:`apprt.gateway.upstream`: a minimal HTTP/1.1 client over the instance's Unix socket;
* :mod:`apprt.gateway.identity`: the platform secret and the signed identity headers;
* :mod:`apprt.gateway.views`: the component (``router`` and ``lifespan``) for the server.
"""
