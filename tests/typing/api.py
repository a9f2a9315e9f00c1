"""The public API used the way a user would; type-checked by mypy, never run."""

from __future__ import annotations

import asyncio

from actors import (
    Actor,
    Bus,
    ConnectionConfig,
    MessageContext,
    NotFound,
    RequestContext,
    RetryLater,
    StreamSpec,
    consumer,
    endpoint,
)
from protocols.base import Message

ORDERS = StreamSpec(name="ORDERS", subjects=("shop.orders",), retention="workqueue")


class PlaceOrder(Message, frozen=True, tag="shop.v1.place_order"):
    """An order."""

    sku: str
    quantity: int


class OrderPlaced(Message, frozen=True, tag="shop.v1.order_placed"):
    """Confirmation."""

    order_id: str


class Shop(Actor):
    """A user's actor."""

    name = "shop"

    @endpoint("shop.place")
    async def place(self, request: PlaceOrder, ctx: RequestContext) -> OrderPlaced:
        if request.quantity > 100:
            raise NotFound(f"not enough {request.sku}")
        return OrderPlaced(order_id=f"{request.sku}-{request.quantity}")

    @consumer(ORDERS, durable="shop", concurrency=4, ack_wait=30.0)
    async def fulfil(self, order: PlaceOrder, ctx: MessageContext) -> None:
        if ctx.num_delivered < 2:
            raise RetryLater(1.0, "warehouse busy")


async def client() -> str:
    config = ConnectionConfig.from_env(url="nats://127.0.0.1:4222")
    async with await Bus.connect(config) as bus:
        placed = await bus.request("shop.place", PlaceOrder(sku="a", quantity=1), OrderPlaced)
        await bus.send("shop.orders", PlaceOrder(sku="a", quantity=2), msg_id="order-2")
        return placed.order_id


async def serve() -> None:
    await Shop().serve(ConnectionConfig(), stop=asyncio.Event(), handle_signals=False)
