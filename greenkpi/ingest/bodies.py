"""Reading an ingest request's body: bounded, chunked or not, and only as JSON.

Django's WSGIRequest reads ``CONTENT_LENGTH`` bytes and nothing else, so a body sent with
``Transfer-Encoding: chunked`` (no Content-Length) reads as empty. A WSGI server that de-chunks
the body itself says so with ``wsgi.input_terminated`` (gunicorn does): then the stream is read
directly, to its end, up to the same byte limit. A server that does not (Django's runserver)
leaves chunk framing we cannot read, so the answer is 411 Length Required, never "empty body".
"""

from __future__ import annotations

from django.http import HttpRequest

# RFC 8259 JSON; parameters (charset=utf-8) are allowed and ignored, JSON being UTF-8 anyway.
JSON_MEDIA_TYPE = "application/json"
READ_CHUNK_BYTES = 64 * 1024


class BodyTooLarge(Exception):
    pass


class LengthRequired(Exception):
    pass


def is_json(request: HttpRequest) -> bool:
    """Whether the request says its body is JSON (``application/json``, any parameters)."""
    media_type = (request.META.get("CONTENT_TYPE") or "").split(";", 1)[0].strip().lower()
    return media_type == JSON_MEDIA_TYPE


def is_chunked(request: HttpRequest) -> bool:
    return "chunked" in (request.META.get("HTTP_TRANSFER_ENCODING") or "").lower()


def read_limited(request: HttpRequest, limit: int) -> bytes:
    """The raw body, never more than ``limit`` bytes of it held (BodyTooLarge beyond that)."""
    declared = request.META.get("CONTENT_LENGTH")
    if declared and not is_chunked(request):
        if declared.isdigit() and int(declared) > limit:
            raise BodyTooLarge(f"Content-Length {declared} exceeds {limit} bytes")
        raw = request.read(limit + 1)
    elif request.META.get("wsgi.input_terminated"):
        raw = _read_to_end(request.META["wsgi.input"], limit + 1)
    elif is_chunked(request):
        raise LengthRequired(
            "this server cannot read a chunked body here; send a Content-Length header"
        )
    else:
        raw = b""  # no Content-Length and no chunking: HTTP says the body is empty
    if len(raw) > limit:
        raise BodyTooLarge(f"body exceeds {limit} bytes")
    return raw


def _read_to_end(stream, at_most: int) -> bytes:
    """Read until the end of the stream or ``at_most`` bytes, whichever comes first."""
    parts: list[bytes] = []
    size = 0
    while size < at_most:
        part = stream.read(min(READ_CHUNK_BYTES, at_most - size))
        if not part:
            break
        parts.append(part)
        size += len(part)
    return b"".join(parts)
