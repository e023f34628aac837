"""Lifecycle hooks the platform calls (see [backend.hooks] in app.toml)."""


def on_install(context: dict) -> dict:
    # Nothing to migrate on a first install; report what the app starts with.
    from crm_connector.data import CONTACTS, DEALS

    return {"contacts": len(CONTACTS), "deals": len(DEALS)}


def on_uninstall(context: dict) -> dict:
    # The demo CRM keeps nothing of its own; a real connector would revoke its
    # credentials at the CRM here. The platform keeps the app's data in an archive.
    return {"uninstalled_from": context.get("org")}
