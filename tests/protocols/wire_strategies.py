"""Hypothesis strategies for wire messages, derived from msgspec's own type information.

``st.from_type`` ignores ``msgspec.Meta`` constraints (patterns, bounds), so it
would build messages the decoder rightly refuses. :func:`messages` reads
:func:`msgspec.inspect.type_info` instead and builds only valid values.
"""

from __future__ import annotations

from typing import Any

import msgspec
from hypothesis import strategies as st
from msgspec import inspect as mi

__all__ = ["json_values", "messages"]

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**53), 2**53)
    | st.text(max_size=10)
    | st.floats(allow_nan=False, allow_infinity=False),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3)
    ),
    max_leaves=8,
)
"""Values that survive both MessagePack and JSON unchanged (the ``Any`` fields)."""


def _bounded(lo: Any, hi: Any, ge: Any, gt: Any, le: Any, lt: Any) -> tuple[Any, Any]:
    return (
        ge if ge is not None else gt if gt is not None else lo,
        le if le is not None else lt if lt is not None else hi,
    )


def _strategy(t: mi.Type, depth: int) -> st.SearchStrategy[Any]:
    if isinstance(t, mi.StructType):
        return _struct(t, depth)
    if isinstance(t, mi.StrType):
        if t.pattern:
            return st.from_regex(t.pattern, fullmatch=True)
        return st.text(min_size=t.min_length or 0, max_size=min(t.max_length or 20, 20))
    if isinstance(t, mi.IntType):
        lo, hi = _bounded(-(2**63), 2**63 - 1, t.ge, t.gt, t.le, t.lt)
        return st.integers(lo + (t.gt is not None), hi - (t.lt is not None))
    if isinstance(t, mi.FloatType):
        lo, hi = _bounded(None, None, t.ge, t.gt, t.le, t.lt)
        return st.floats(
            min_value=lo,
            max_value=hi,
            exclude_min=t.gt is not None,
            exclude_max=t.lt is not None,
            allow_nan=False,
            allow_infinity=False,
        )
    if isinstance(t, mi.BoolType):
        return st.booleans()
    if isinstance(t, mi.NoneType):
        return st.none()
    if isinstance(t, mi.LiteralType):
        return st.sampled_from(t.values)
    if isinstance(t, mi.UnionType):
        return st.one_of(*(_strategy(x, depth) for x in t.types))
    if isinstance(t, mi.ListType):
        least = t.min_length or 0
        return st.lists(
            _strategy(t.item_type, depth + 1),
            min_size=least,
            max_size=max(least, 0 if depth > 2 else 3),
        )
    if isinstance(t, mi.DictType):
        return st.dictionaries(
            _strategy(t.key_type, depth + 1), _strategy(t.value_type, depth + 1), max_size=3
        )
    if isinstance(t, mi.AnyType):
        return json_values
    raise NotImplementedError(f"no strategy for {t!r}")


def _struct(t: mi.StructType, depth: int) -> st.SearchStrategy[Any]:
    required = {f.name: _strategy(f.type, depth + 1) for f in t.fields if f.required}
    optional = {f.name: _strategy(f.type, depth + 1) for f in t.fields if not f.required}
    return st.fixed_dictionaries(required, optional=optional).map(lambda kw: t.cls(**kw))


def messages(message_type: type[msgspec.Struct]) -> st.SearchStrategy[Any]:
    """Return a strategy of valid instances of ``message_type``."""
    return _strategy(mi.type_info(message_type), 0)
