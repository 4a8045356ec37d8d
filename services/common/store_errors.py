"""What a data store's client raises when the store is down, slow or refusing: one tuple each.

Every `except` around a Redis or MySQL call names one of these, so a failure mode added here
(a new client's timeout class, say) is handled everywhere at once. `TimeoutError` is in both:
`asyncio.timeout` around a call raises it, and redis-py's socket timeouts subclass it.
"""

from __future__ import annotations

import aiomysql
from pymysql.err import InterfaceError, OperationalError
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisError
from redis.exceptions import TimeoutError as RedisTimeoutError

# What code that degrades (serves stale, buffers, falls back) catches around a store call.
REDIS_ERRORS: tuple[type[Exception], ...] = (RedisError, OSError, TimeoutError)
MYSQL_ERRORS: tuple[type[Exception], ...] = (aiomysql.Error, OSError, TimeoutError)
STORE_ERRORS: tuple[type[Exception], ...] = (*REDIS_ERRORS, *MYSQL_ERRORS)

# What an unhandled store failure answers 503 for (problems.py): the store's connection failed,
# so the request may be retried. Narrower on purpose: a ProgrammingError or a Redis ResponseError
# is a bug, and stays a 500 so it is seen.
STORE_UNAVAILABLE: tuple[type[Exception], ...] = (
    RedisConnectionError,
    RedisTimeoutError,
    OperationalError,
    InterfaceError,
)
