"""The NATS connection troupe uses: nats-py's client with memoised header blocks.

Every troupe message carries headers (``Content-Type`` at least), and most
carry exactly the same block: ``Content-Type: application/msgpack`` and
nothing else. nats-py parses every received block line by line and encodes
every sent dict key by key, which costs more than decoding the message
itself. :class:`Connection` remembers the last few blocks in both
directions: a received block seen before is answered with a fresh copy of
its parsed dict, a header dict sent before reuses its encoded bytes. What
comes out is exactly what nats-py would produce (both results are memoised
from nats-py's own code, keyed by the exact input), so a block that varies
per message (a trace context, a de-duplication id) simply misses and takes
nats-py's path.

Replies to requests skip one hop: nats-py queues each reply for the task of its
reply subscription, which then resolves the request's future; the reply is
handed to that future as it is read instead (what nats-py does for its old-style
requests).

A request the server refuses to let this login publish (``-ERR 'Permissions
Violation for Publish to "SUBJECT"'``) fails at once with
:class:`~actors.runtime.errors.Forbidden` instead of waiting out its timeout
for a reply that cannot come.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from nats.protocol import command as prot_command

from actors.runtime.errors import Forbidden
from actors.runtime.tls import StrictTlsClient

__all__ = ["Connection", "encode_header_block"]

_CACHE_SIZE = 64
"""Blocks remembered per direction; when full the memo starts again from empty."""

_MAX_BLOCK = 512
"""Longest received header block that is memoised, in bytes."""

_REQUESTS_KEPT = 4096
"""Subjects of requests remembered for refusals; when full the memo starts again."""

_PUBLISH_REFUSED = re.compile(r'permissions violation for publish to "([^"]+)"')

# nats-py's own rules for header names and values (nats.aio.client).
_HEADER_KEY = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
_VALUE_NEWLINES = str.maketrans({"\r": " ", "\n": " "})


class Connection(StrictTlsClient):
    """A nats-py client (``tls://`` kept strict) that memoises repeated header blocks and
    hands replies to their requests directly."""

    def __init__(self) -> None:
        super().__init__()
        self._parsed_blocks: dict[bytes, dict[str, str]] = {}
        self._encoded_blocks: dict[tuple[tuple[str, Any], ...], bytes] = {}
        self._sent_once: set[tuple[tuple[str, Any], ...]] = set()
        self._reply_sid = 0
        """Subscription id of the replies to requests (0 until the first request)."""
        self._reply_token_at = 0
        """Where the request's token starts in a reply's subject."""
        self._reply_prefix = ""
        self._request_subjects: dict[str, str] = {}
        """Request token -> the subject it was published on."""

    async def _init_request_sub(self) -> None:
        await super()._init_request_sub()
        prefix = bytes(self._resp_sub_prefix or b"")
        mux = prefix.decode() + "*"
        self._reply_prefix = prefix.decode()
        self._reply_token_at = len(prefix)
        self._reply_sid = next((sid for sid, sub in self._subs.items() if sub.subject == mux), 0)

    async def _process_msg(
        self, sid: int, subject: bytes, reply: bytes, data: bytes, headers: bytes
    ) -> None:
        if sid != self._reply_sid or not sid:
            await super()._process_msg(sid, subject, reply, data, headers)
            return
        # A reply to a request: what nats-py's path does for it, without queueing it for
        # the reply subscription's task to hand to the waiting future one hop later.
        self.stats["in_msgs"] += 1
        self.stats["in_bytes"] += len(data)
        sub = self._subs.get(sid)
        if sub is None:
            return
        sub._received += 1
        msg = self._build_message(sid, subject, reply, data, await self._process_headers(headers))
        if not msg:
            return
        future = self._resp_map.get(msg.subject[self._reply_token_at :])
        if future is not None and not future.done():
            future.set_result(msg)

    async def _process_headers(self, headers: bytes | None) -> dict[str, str] | None:
        if not headers:
            return None
        memo = self._parsed_blocks
        parsed = memo.get(headers)
        if parsed is not None:
            return parsed.copy()  # readers may change their message's headers
        result: dict[str, str] | None = await super()._process_headers(headers)
        if result and len(headers) <= _MAX_BLOCK:
            if len(memo) >= _CACHE_SIZE:
                memo.clear()
            memo[headers] = result.copy()
        return result

    @staticmethod
    def _parse_header_lines(raw: bytes) -> dict[str, str]:
        """nats-py's parsing of a block's header lines, without a generator per name.

        A block that varies per message (a de-duplication id, a stream sequence in a
        direct get's answer) misses the memo; nats-py tests each name for whitespace
        one character at a time. ``str.split`` applies the same rule (``str.isspace``)
        in C: a name without whitespace splits into itself alone.
        """
        out: dict[str, str] = {}
        for line in raw.split(b"\r\n"):
            if not line:
                continue
            name, sep, value = line.partition(b":")
            if not sep:
                continue
            try:
                key = name.strip().decode("ascii")
            except UnicodeDecodeError:
                continue  # not a token: nats-py drops it as well
            if key and key.split() != [key]:
                continue  # whitespace inside the name
            out[key] = value.strip().decode("utf-8", "replace")
        return out

    async def _process_err(self, err_msg: str) -> None:
        refused = _PUBLISH_REFUSED.search(err_msg)
        if refused is not None:
            self._refuse_requests(refused.group(1))
        await super()._process_err(err_msg)

    def _refuse_requests(self, subject: str) -> None:
        """Fail the pending requests published on ``subject`` (as the server spelt it)."""
        for token, sent_to in list(self._request_subjects.items()):
            if sent_to.lower() != subject.lower():
                continue
            del self._request_subjects[token]
            future = self._resp_map.get(token)
            if future is not None and not future.done():
                user = self.options.get("user")
                login = f"user {user}" if user else "this login"
                future.set_exception(Forbidden(f"NATS does not let {login} publish on {sent_to}"))

    async def _send_publish(
        self,
        subject: str,
        reply: str,
        payload: bytes,
        payload_size: int,
        headers: dict[str, Any] | None,
    ) -> None:
        if reply and self._reply_prefix and reply.startswith(self._reply_prefix):
            requests = self._request_subjects
            if len(requests) >= _REQUESTS_KEPT:
                requests.clear()
            requests[reply[self._reply_token_at :]] = subject
        block = None
        if headers is not None and subject:
            try:
                key = tuple(headers.items())
                block = self._encoded_blocks.get(key)
            except TypeError:  # an unhashable value: nats-py's path decides
                key = None
        if block is None:
            await super()._send_publish(subject, reply, payload, payload_size, headers)
            if headers is not None and key is not None:
                # nats-py accepted these headers; remember their encoding.
                self._remember_block(key, headers)
            return
        # The rest of nats-py's _send_publish, with the block already encoded.
        self.stats["out_msgs"] += 1
        self.stats["out_bytes"] += payload_size
        await self._send_command(prot_command.hpub_cmd(subject, reply, block, payload))
        if self._flush_queue is not None and self._flush_queue.empty():
            await self._flush_pending()

    def _remember_block(self, key: tuple[tuple[str, Any], ...], headers: dict[str, Any]) -> None:
        # Encoded on the second sighting: a block unique to one message (a trace
        # context, a de-duplication id) never costs a second encoding.
        seen = self._sent_once
        if key not in seen:
            if len(seen) >= _CACHE_SIZE:
                seen.clear()
            seen.add(key)
            return
        block = encode_header_block(headers)
        if block is None:
            return
        memo = self._encoded_blocks
        if len(memo) >= _CACHE_SIZE:
            memo.clear()
        memo[key] = block


def encode_header_block(headers: Mapping[str, Any]) -> bytes | None:
    """Encode ``headers`` exactly as nats-py's publish does, or ``None`` when it cannot.

    Args:
        headers: header names and values.

    Returns:
        The ``NATS/1.0`` block, or ``None`` when a value is not a string or a
        name is not a valid token (nats-py's own path then decides).
    """
    out = bytearray(b"NATS/1.0\r\n")
    for name, value in headers.items():
        if not isinstance(name, str) or not isinstance(value, str):
            return None
        key = name.strip()
        if not key:
            continue
        if not _HEADER_KEY.fullmatch(key):
            return None
        out += key.encode()
        out += b": "
        out += value.strip().translate(_VALUE_NEWLINES).encode()
        out += b"\r\n"
    out += b"\r\n"
    return bytes(out)
