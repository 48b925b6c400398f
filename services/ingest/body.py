"""Reading a request body within its size limit, before anything parses it."""

from __future__ import annotations

import zlib

from fastapi import Request

from services.ingest.domain import BodyRejected, Rejection
from services.ingest.reasons import Reason
from shared.dlq import MAX_ORIGINAL_BYTES

JSON = "application/json"


def media_type(request: Request) -> str:
    return request.headers.get("content-type", "").split(";")[0].strip().lower()


def require_media_type(request: Request, accepted: tuple[str, ...]) -> None:
    if media_type(request) not in accepted:
        message = f"send Content-Type: {' or '.join(t for t in accepted if t)}"
        raise BodyRejected(Rejection(Reason.unsupported_media_type, message, b""))


async def read_limited(request: Request, limit: int) -> bytes:
    """The body, decompressed if gzip-encoded; refused as soon as it passes ``limit``."""
    declared = request.headers.get("content-length", "")
    size = int(declared) if declared.isdigit() and int(declared) > limit else None
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        # Read no more than the dead letter keeps of a body already known too large.
        if len(body) > limit or (size is not None and len(body) >= MAX_ORIGINAL_BYTES):
            raise _too_large(bytes(body[:MAX_ORIGINAL_BYTES]), size, limit)
    if size is not None:
        raise _too_large(bytes(body), size, limit)
    encoding = request.headers.get("content-encoding", "identity").strip().lower()
    if encoding == "gzip":
        return _gunzip(bytes(body), limit)
    if encoding != "identity":
        message = f"Content-Encoding {encoding!r} is not supported; use gzip or none"
        raise BodyRejected(Rejection(Reason.unsupported_media_type, message, bytes(body)))
    return bytes(body)


def _gunzip(body: bytes, limit: int) -> bytes:
    # The limit applies to the decompressed size, so a small bomb cannot pass it.
    decompressor = zlib.decompressobj(wbits=zlib.MAX_WBITS | 16)
    try:
        plain = decompressor.decompress(body, limit + 1)
    except zlib.error as exc:
        message = f"body is not valid gzip: {exc}"
        raise BodyRejected(Rejection(Reason.malformed_json, message, body)) from exc
    if len(plain) > limit:
        raise _too_large(body, None, limit, "decompressed ")
    return plain


def _too_large(prefix: bytes, size: int | None, limit: int, what: str = "") -> BodyRejected:
    message = f"request {what}body is larger than {limit} bytes"
    return BodyRejected(Rejection(Reason.body_too_large, message, prefix, size=size))
