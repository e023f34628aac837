"""The web shell and the micro-frontend loader (``docs/frontend.md``).

* :mod:`apprt.shell.views`: the component (the page at ``/``, its static files, the
  iframe documents, content-addressed assets, the import map API, telemetry);
* :mod:`apprt.shell.negotiate`: shared-dependency negotiation (pure);
* :mod:`apprt.shell.importmap`: an organization's import map and app descriptors;
* :mod:`apprt.shell.installed`: installed apps, their trees and verified file digests;
* :mod:`apprt.shell.telemetry`: frontend metrics and per-app health;
* ``static/``: the shell itself, plain ES modules (no build step).
"""
