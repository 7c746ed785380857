"""Server-sent events: decoding ``text/event-stream`` lines into events (WHATWG HTML,
"Parsing an event stream"), enough for Podium's ``/stream`` route."""

from __future__ import annotations

from collections.abc import AsyncIterable, AsyncIterator
from dataclasses import dataclass


@dataclass(frozen=True)
class ServerSentEvent:
    event: str
    data: str
    id: str | None


class Decoder:
    """Feed it lines (without their line terminator); it returns an event at each blank
    line that ends one. Comments (``: keepalive``) and unknown fields are ignored."""

    def __init__(self) -> None:
        self._event = ""
        self._data: list[str] = []
        self._id: str | None = None
        self.last_id: str | None = None

    def feed(self, line: str) -> ServerSentEvent | None:
        if not line:
            return self._dispatch()
        if line.startswith(":"):
            return None
        name, _, value = line.partition(":")
        value = value.removeprefix(" ")
        if name == "event":
            self._event = value
        elif name == "data":
            self._data.append(value)
        elif name == "id" and "\0" not in value:
            self._id = value
        return None

    def _dispatch(self) -> ServerSentEvent | None:
        if self._id is not None:
            self.last_id = self._id
        if not self._data and not self._event:
            self._id = None
            return None
        found = ServerSentEvent(self._event or "message", "\n".join(self._data), self._id)
        self._event, self._data, self._id = "", [], None
        return found


async def decode(lines: AsyncIterable[str]) -> AsyncIterator[ServerSentEvent]:
    """The events of a stream of lines; an event cut off by the end of the stream is
    dropped, as the standard says."""
    decoder = Decoder()
    async for line in lines:
        found = decoder.feed(line)
        if found is not None:
            yield found
