"""The typed state slot: a route gets the declared type, or a clear error before the lifespan."""

from __future__ import annotations

from dataclasses import dataclass

import pytest
from fastapi import FastAPI

from services.common.state import StateSlot


@dataclass
class Things:
    count: int


@dataclass
class Other:
    name: str


def test_the_slot_returns_what_was_put() -> None:
    app = FastAPI()
    slot = StateSlot(Things)
    slot.put(app, Things(3))
    assert slot.of_app(app).count == 3


def test_an_empty_or_wrongly_typed_slot_is_an_error() -> None:
    app = FastAPI()
    slot = StateSlot(Things)
    with pytest.raises(RuntimeError, match="holds no Things"):
        slot.of_app(app)
    StateSlot(Other).put(app, Other("x"))
    with pytest.raises(RuntimeError, match="holds no Things"):
        slot.of_app(app)
