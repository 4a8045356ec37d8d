"""A service's shared objects as one typed value on the app, instead of string-keyed attributes.

Each service declares a dataclass of what its routes use (the counter's VisitCounter, the
banner's catalog, ...) and one `StateSlot` for it. The lifespan `put`s the value; routes take it
as a FastAPI dependency (`Annotated[CounterState, Depends(SLOT.of)]`) and get the declared type,
checked once at the boundary rather than cast at every use.
"""

from __future__ import annotations

from typing import Generic, TypeVar

from fastapi import FastAPI, Request

T = TypeVar("T")
_ATTRIBUTE = "service_state"


class StateSlot(Generic[T]):
    def __init__(self, kind: type[T]) -> None:
        self.kind = kind

    def put(self, app: FastAPI, value: T) -> None:
        setattr(app.state, _ATTRIBUTE, value)

    def of_app(self, app: FastAPI) -> T:
        value = getattr(app.state, _ATTRIBUTE, None)
        if not isinstance(value, self.kind):
            # Only a route served before the lifespan ran (or a wiring mistake) gets here.
            raise RuntimeError(f"the app holds no {self.kind.__name__}: its lifespan has not run")
        return value

    async def of(self, request: Request) -> T:
        # async on purpose: FastAPI runs a plain-def dependency in the threadpool on every
        # request, which cost a peer counter ~45 % of its throughput (CONVENTIONS.md). Code
        # outside a dependency uses of_app.
        return self.of_app(request.app)
