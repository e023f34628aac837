"""Lifecycle hooks the platform calls (see [backend.hooks] in app.toml)."""


def on_install(context: dict) -> dict:
    # Nothing to migrate on a first install; report what the app starts with.
    from crm_connector.data import CONTACTS, DEALS

    return {"contacts": len(CONTACTS), "deals": len(DEALS)}
