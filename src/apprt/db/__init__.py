"""Database plumbing shared by every domain: base class, engine, sessions, migrations.

Domains keep their tables in their own ``models.py`` (registered in
:mod:`apprt.db.models`); nothing outside :mod:`apprt.db.sqlite` knows which database
is behind the URL.
"""
