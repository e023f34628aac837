"""Notes per organization, in the platform's state service (``apprt.sdk.state``).

Each note is one key, ``notes/<10-digit number>``, so listing the ``notes/`` prefix
gives them in the order they were written; the number comes from an atomic
``increment`` of ``notes-seq``, so two notes written at once never get the same one.
The organization is never part of the key: the platform keeps each organization's
state apart, and acts for the organization of the caller (the signed identity of the
request being handled, which the SDK forwards).

Under the platform the store talks to ``$APPRT_PLATFORM_SOCKET``. Outside it (the
app's own tests, a developer's machine) it uses the SDK's local stand-in, kept in
``$APPRT_APP_DATA`` (else in memory), which follows the same rules.
"""

from __future__ import annotations

import os
from typing import Any

from apprt.sdk import state
from apprt.sdk.identity import Identity

PREFIX = "notes/"
SEQUENCE = "notes-seq"


def on_platform() -> bool:
    return bool(os.environ.get("APPRT_PLATFORM_SOCKET"))


def _transport() -> Any:
    if on_platform():
        return state.SocketTransport()
    return state.LocalTransport(os.environ.get("APPRT_APP_DATA"))


class NoteStore:
    def __init__(self, client: state.AsyncStateClient | None = None) -> None:
        self.client = client or state.AsyncStateClient(_transport())

    async def list(self, caller: Identity) -> list[dict[str, Any]]:
        return [entry.value async for entry in self.client.items(PREFIX, caller=caller)]

    async def add(self, caller: Identity, text: str) -> dict[str, Any]:
        number = await self.client.increment(SEQUENCE, caller=caller)
        note = {"id": str(number), "author": caller.user or "anonymous", "text": text}
        # if_version=0: only if absent (the number is ours alone, so this never conflicts)
        await self.client.put(f"{PREFIX}{number:010d}", note, if_version=0, caller=caller)
        return note
