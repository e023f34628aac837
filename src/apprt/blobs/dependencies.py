"""The process's blob store for HTTP handlers: ``store: Blobs``."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from apprt.blobs.store import BlobStore


def get_blob_store(request: Request) -> BlobStore:
    store: BlobStore = request.app.state.blob_store
    return store


Blobs = Annotated[BlobStore, Depends(get_blob_store)]
