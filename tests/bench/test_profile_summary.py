"""Reading py-spy's collapsed stacks (bench/profile_summary.py)."""

from __future__ import annotations

import pytest
from profile_summary import frame_area, summarize_collapsed


@pytest.mark.parametrize(
    ("frame", "area"),
    [
        ("recommend (services/recommender/api.py)", "services/recommender"),
        ("call (/work/main/services/common/requestctx.py:52)", "services/common"),
        ("run_asgi (uvicorn/protocols/http/httptools_impl.py)", "uvicorn"),
        ("_run_once (asyncio/base_events.py:1922)", "asyncio"),
        ("wait (threading.py)", "threading"),
        ("x (/usr/lib/python3.11/site-packages/redis/asyncio/client.py)", "redis"),
        ("x (/root/.pyenv/versions/3.11.7/lib/python3.11/json/decoder.py)", "json"),
        ('process 123:"gunicorn"', 'process 123:"gunicorn"'),
    ],
)
def test_frame_areas(frame: str, area: str) -> None:
    assert frame_area(frame) == area


def test_collapsed_stacks_are_summarised() -> None:
    trunk = "<module> (gunicorn);run (asyncio/runners.py)"
    text = "\n".join(
        [
            f"{trunk};handle (services/recommender/api.py);execute (redis/asyncio/client.py) 60",
            f"{trunk};handle (services/recommender/api.py);dumps (orjson.py) 20",
            f"{trunk};send (uvicorn/protocols/http/httptools_impl.py) 20",
            "not a stack line",
        ]
    )
    summary = summarize_collapsed(text)
    assert summary.samples == 100
    assert summary.self_by_area == [("redis", 0.6), ("orjson", 0.2), ("uvicorn", 0.2)]
    assert summary.top_inclusive[0] == ("handle (services/recommender/api.py)", 0.8)
    # The trunk (on every stack) is left out of the inclusive list.
    assert all("gunicorn" not in frame for frame, _ in summary.top_inclusive)
    assert summary.top_self[0] == ("execute (redis/asyncio/client.py)", 0.6)
    assert summary.top_project == [("handle (services/recommender/api.py)", 0.8)]
    assert summarize_collapsed("").samples == 0
