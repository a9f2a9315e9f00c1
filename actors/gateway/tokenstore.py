"""The tokens bucket: issuing, listing, revoking and rotating tokens (only the gateway writes)."""

from __future__ import annotations

from collections.abc import Sequence

import msgspec

from actors.gateway import tokens
from actors.runtime.clock import Clock, system_clock
from actors.runtime.errors import BadRequest, NotFound
from actors.runtime.kv import TypedBucket
from protocols.gateway import TokenInfo, TokenIssued, TokenRecord

__all__ = ["TokenStore"]


class TokenStore:
    """Token records by id, hashes only.

    Args:
        bucket: the tokens bucket.
        clock: time source of issue, expiry and revocation times.
    """

    def __init__(self, bucket: TypedBucket[TokenRecord], *, clock: Clock = system_clock) -> None:
        self.bucket = bucket
        self._clock = clock

    async def lookup(self, token_id: str) -> TokenRecord | None:
        """Return the record of ``token_id``, if any."""
        entry = await self.bucket.get_or_none(token_id)
        return None if entry is None else entry.value

    async def create(
        self,
        name: str,
        role: str,
        scopes: Sequence[str] = (),
        *,
        ttl_s: float | None = None,
        created_by: str = "",
        rotated_from: str | None = None,
    ) -> TokenIssued:
        """Issue a token and store its hash.

        Raises:
            BadRequest: unknown role or scope.
        """
        try:
            granted = tokens.scopes_for(role, scopes)
        except ValueError as exc:
            raise BadRequest(str(exc)) from None
        secret, token_id, digest = tokens.mint()
        now = self._clock.time()
        info = TokenInfo(
            token_id=token_id,
            name=name,
            role=role,
            scopes=granted,
            created_at=now,
            expires_at=None if ttl_s is None else now + ttl_s,
            created_by=created_by,
            rotated_from=rotated_from,
        )
        await self.bucket.create(token_id, TokenRecord(info=info, digest=digest))
        return TokenIssued(info=info, token=secret)

    async def list(self, *, include_revoked: bool = False) -> list[TokenInfo]:
        """Return every token, oldest first (live ones only unless ``include_revoked``)."""
        now = self._clock.time()
        found: list[TokenInfo] = []
        for key in await self.bucket.keys():
            record = await self.lookup(key)
            if record is None:
                continue
            info = record.info
            dead = info.revoked_at is not None or (
                info.expires_at is not None and info.expires_at <= now
            )
            if include_revoked or not dead:
                found.append(info)
        return sorted(found, key=lambda i: (i.created_at, i.token_id))

    async def revoke(self, token_id: str) -> TokenInfo:
        """Revoke ``token_id`` at once (idempotent).

        Raises:
            NotFound: no such token.
        """
        entry = await self.bucket.get_or_none(token_id)
        if entry is None:
            raise NotFound(f"no token {token_id}")
        info = entry.value.info
        if info.revoked_at is not None:
            return info
        revoked = msgspec.structs.replace(info, revoked_at=self._clock.time())
        await self.bucket.put(token_id, msgspec.structs.replace(entry.value, info=revoked))
        return revoked

    async def rotate(
        self, token_id: str, *, ttl_s: float | None = None, created_by: str = ""
    ) -> TokenIssued:
        """Issue a replacement of ``token_id`` (same name, role, scopes) and revoke it.

        Raises:
            NotFound: no such token.
            BadRequest: the token is already revoked.
        """
        old = await self.lookup(token_id)
        if old is None:
            raise NotFound(f"no token {token_id}")
        if old.info.revoked_at is not None:
            raise BadRequest(f"token {token_id} is revoked; issue a new one")
        if ttl_s is None and old.info.expires_at is not None:
            ttl_s = max(1.0, old.info.expires_at - old.info.created_at)
        issued = await self.create(
            old.info.name,
            old.info.role,
            old.info.scopes if old.info.role == "custom" else (),
            ttl_s=ttl_s,
            created_by=created_by or old.info.created_by,
            rotated_from=token_id,
        )
        await self.revoke(token_id)
        return issued
