"""JSON documents put together from pieces already encoded: the bytes Starlette's `JSONResponse` would write for the
whole document, without encoding again (nor validating again) the parts that did not change.

`dumps` encodes as `JSONResponse.render` does (UTF-8, no ASCII escapes, no spaces); an object is `{` + its members
`"name":value` joined by `,` + `}`, a list `[` + its items joined by `,` + `]`, so a document whose members or
items are encoded one by one and joined is byte for byte the document encoded at once.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

from pydantic import BaseModel
from starlette.responses import JSONResponse

__all__ = ["EncodedJSON", "dumps", "joined", "model_bytes", "spliced"]


def dumps(content: Any) -> bytes:
    """`content` as `JSONResponse` encodes it."""
    return json.dumps(content, ensure_ascii=False, allow_nan=False, indent=None, separators=(",", ":")).encode()


def model_bytes(body: BaseModel) -> bytes:
    """A model's JSON as the API writes it (`model_dump(mode="json", by_alias=True)`, then `dumps`)."""
    return dumps(body.model_dump(mode="json", by_alias=True))


def joined(items: Sequence[bytes]) -> bytes:
    """A JSON list of items already encoded."""
    return b"[" + b",".join(items) + b"]"


def spliced(content: Mapping[str, Any], encoded: Mapping[str, bytes]) -> bytes:
    """The object `content` with the members named in `encoded` written as given (already JSON), in `content`'s
    order (each of them must be a member of `content`: a placeholder, e.g. an empty list, keeps its place)."""
    return (
        b"{"
        + b",".join(dumps(k) + b":" + (encoded[k] if k in encoded else dumps(v)) for k, v in content.items())
        + b"}"
    )


class EncodedJSON(JSONResponse):
    """A `JSONResponse` (same headers) of a body already encoded."""

    def render(self, content: Any) -> bytes:
        assert isinstance(content, bytes)
        return content
