"""The command line: the local cluster's Prometheus by default (9090 + QUARTET_PORT_OFFSET, as
cluster/topology.py lays it out), URLs without a scheme, and `--at` in either form."""

from __future__ import annotations

import datetime as dt

import pytest

from cluster.monitor.__main__ import parse_arguments
from cluster.topology import ClusterSettings, Topology


def test_the_default_is_the_local_clusters_prometheus(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("QUARTET_PORT_OFFSET", "1234")
    port = Topology(ClusterSettings()).prometheus_port
    assert port == 9090 + 1234
    assert parse_arguments([]).prometheus == f"http://127.0.0.1:{port}"


def test_a_url_without_scheme_is_http() -> None:
    assert (
        parse_arguments(["--prometheus", "prom.example:9090"]).prometheus
        == "http://prom.example:9090"
    )
    assert parse_arguments(["--prometheus", "https://p.example"]).prometheus == "https://p.example"


def test_at_takes_unix_seconds_or_iso_8601_in_utc_and_keeps_whole_seconds() -> None:
    when = dt.datetime(2026, 12, 3, 14, 5, tzinfo=dt.UTC).timestamp()
    assert parse_arguments(["--once", "--at", "2026-12-03T14:05:00"]).at == when
    assert parse_arguments(["--once", "--at", "2026-12-03T15:05:00+01:00"]).at == when
    assert parse_arguments(["--once", "--at", f"{when + 0.7}"]).at == when


@pytest.mark.parametrize(
    "argv", [["--at", "1796000000"], ["--once", "--at", "yesterday"], ["--interval", "0"]]
)
def test_refused_arguments(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        parse_arguments(argv)
    assert exited.value.code == 2
    assert "error:" in capsys.readouterr().err
