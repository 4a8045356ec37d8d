"""The ingest command against the cluster's MariaDB and running banner instances."""

from __future__ import annotations

import hashlib
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx

from services.banner import ingest
from services.common.mysql import connect_blocking
from tests.support.cluster import RunningCluster
from tests.support.datasets import Dataset

CAMPAIGN = 777_001


def _ingest(cluster: RunningCluster, directory: Path) -> str:
    result = subprocess.run(
        [sys.executable, "-m", "services.banner.ingest", str(directory)],
        env={
            **cluster.env,
            "MYSQL_DSN": cluster.mysql_dsn,
            "REDIS_SHARDS": cluster.topo.redis_shards,
        },
        capture_output=True,
        text=True,
        check=True,
        timeout=300,
    )
    return result.stdout + result.stderr


def _snapshot(cluster: RunningCluster) -> tuple[int, int, int, str]:
    conn = connect_blocking(cluster.mysql_dsn)
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT generation FROM banner_generation WHERE id = 1")
            (generation,) = cur.fetchone()
            cur.execute("SELECT COUNT(*) FROM banner_clicks")
            (clicks,) = cur.fetchone()
            cur.execute("SELECT SUM(impressions) FROM banner_impressions")
            (impressions,) = cur.fetchone()
            cur.execute(
                "SELECT GROUP_CONCAT(CONCAT(quarter, ':', campaign_id, '=', banners)"
                " ORDER BY quarter, campaign_id SEPARATOR ';') FROM banner_sets"
            )
            (sets,) = cur.fetchone()
            return int(generation), int(clicks), int(impressions), str(sets)
    finally:
        conn.close()


def test_ingesting_the_same_dataset_again_changes_nothing(
    cluster: RunningCluster, dataset: Dataset
) -> None:
    before = _snapshot(cluster)
    output = _ingest(cluster, dataset.directory)
    assert output.count("rejected: identical content ingested at") == 12
    assert "nothing new: the sets are unchanged" in output
    assert _snapshot(cluster) == before


def _write(path: Path, header: str, rows: list[str]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join([header, *rows]) + "\n")


def test_malformed_rows_are_reported_and_a_new_ingest_reaches_running_instances(
    cluster: RunningCluster, tmp_path: Path
) -> None:
    c = CAMPAIGN
    _write(
        tmp_path / "1/impressions_1.csv",
        "banner_id,campaign_id",
        [f"{b},{c}" for b in range(90001, 90008)] + ["90001,", "x,1", f"90002,{c}"],
    )
    _write(
        tmp_path / "1/clicks_1.csv",
        "click_id,banner_id,campaign_id",
        [f"{7_000_000 + i},{90001 + i % 3},{c}" for i in range(6)]
        + ["-5,90001,1", "1,2", f"7000000,90001,{c}"],
    )
    _write(
        tmp_path / "1/conversions_1.csv",
        "conversion_id,click_id,revenue",
        ["8000001,7000000,2.5", "8000002,7000001,abc", "8000003,7000001,1.25"],
    )
    output = _ingest(cluster, tmp_path)

    assert "1/impressions_1.csv: 10 rows, 8 loaded, 0 skipped (key exists), 2 malformed" in output
    assert "1/impressions_1.csv:9: banner_id" not in output
    assert "1/impressions_1.csv:9: campaign_id is not a positive integer: ''" in output
    assert "1/impressions_1.csv:10: banner_id is not a positive integer: 'x'" in output
    assert "1/clicks_1.csv: 9 rows, 6 loaded, 1 skipped (key exists), 2 malformed" in output
    assert "1/clicks_1.csv:9: expected 3 fields, found 2" in output
    assert "1/conversions_1.csv:3: revenue is not a number: 'abc'" in output
    assert "2/impressions_2.csv: missing, skipped" in output

    # Every running instance serves the new campaign without a restart (Redis notification).
    urls = [cluster.instance_url(name) for name in ("banner_1", "banner_2")]
    deadline = time.monotonic() + 10
    served: dict[str, list[int]] = {}
    while len(served) < len(urls) and time.monotonic() < deadline:
        for url in urls:
            response = httpx.get(f"{url}/api/campaigns/{c}/banners", params={"quarter": 1})
            if response.status_code == 200:
                served[url] = sorted(response.json()["banners"])
        time.sleep(0.1)
    # X = 2 (90001: 2.5, 90002: 1.25), then the most-clicked other banner, then random fill.
    assert set(served) == set(urls)
    for banners in served.values():
        assert len(banners) == 5
        assert {90001, 90002, 90003} <= set(banners) <= set(range(90001, 90008))
    assert len({tuple(b) for b in served.values()}) == 1

    # The same files again: rejected, and clicks already known would be skipped, not doubled.
    again = _ingest(cluster, tmp_path)
    assert again.count("rejected: identical content") == 3


def test_an_ingest_killed_before_its_sets_committed_recomputes_them_on_rerun(
    cluster: RunningCluster, tmp_path: Path
) -> None:
    c = CAMPAIGN + 100
    _write(
        tmp_path / "1/impressions_1.csv",
        "banner_id,campaign_id",
        [f"{b},{c}" for b in range(91001, 91007)],
    )
    digest = hashlib.sha256((tmp_path / "1/impressions_1.csv").read_bytes()).hexdigest()
    env = {**cluster.env, "MYSQL_DSN": cluster.mysql_dsn, "REDIS_SHARDS": cluster.topo.redis_shards}
    # The test holds the generation row, so the ingest's recompute cannot commit: once the file
    # has committed, the SIGKILL lands between the file and the sets, every time.
    holder = connect_blocking(cluster.mysql_dsn)
    watcher = connect_blocking(cluster.mysql_dsn)
    watcher.autocommit(True)
    try:
        with holder.cursor() as cur:
            holder.begin()
            cur.execute("SELECT generation FROM banner_generation WHERE id = 1 FOR UPDATE")
        ingest = subprocess.Popen(
            [sys.executable, "-m", "services.banner.ingest", str(tmp_path)],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
        )
        try:
            deadline = time.monotonic() + 60
            with watcher.cursor() as cur:
                while not cur.execute("SELECT 1 FROM banner_files WHERE sha256 = %s", (digest,)):
                    assert ingest.poll() is None, ingest.communicate()[0]
                    assert time.monotonic() < deadline
                    time.sleep(0.05)
        finally:
            ingest.send_signal(signal.SIGKILL)
            ingest.communicate()
        holder.rollback()
        with watcher.cursor() as cur:
            assert not cur.execute("SELECT 1 FROM banner_sets WHERE campaign_id = %s", (c,))
    finally:
        holder.close()
        watcher.close()

    output = _ingest(cluster, tmp_path)
    assert "1/impressions_1.csv: rejected: identical content ingested at" in output
    assert "the sets predate 1 recorded file(s): recomputing" in output
    url = f"{cluster.instance_url('banner_1')}/api/campaigns/{c}/banners"
    deadline = time.monotonic() + 10
    while (served := httpx.get(url, params={"quarter": 1})).status_code != 200:
        assert time.monotonic() < deadline, served.text
        time.sleep(0.1)
    # X = 0 and nothing clicked: five of the campaign's banners.
    banners = served.json()["banners"]
    assert len(banners) == 5
    assert set(banners) <= set(range(91001, 91007))
    # Now in step: a third run loads and recomputes nothing.
    assert "nothing new: the sets are unchanged" in _ingest(cluster, tmp_path)


def test_unicode_digits_and_overlong_ids_are_malformed_rows_not_an_abort() -> None:
    """'²' and '①' pass str.isdigit() but not int(); int() takes U+0661 (Arabic-Indic one) and
    refuses 5,000 digits: each is one malformed row, and the valid rows around them load."""
    rows = [
        "9001,101,1001",
        "\u00b2,101,1001",
        "9002,\u2460,1001",
        "9003,101,\u0661",
        "9" * 5000 + ",101,1001",
        f"{2**63},101,1001",
        f"9004,{2**32},1001",
        "0,101,1001",
        "9005,101,1001",
    ]
    report = ingest.FileReport("1/clicks_1.csv")
    parsed = ingest.parse("clicks", "click_id,banner_id,campaign_id\n" + "\n".join(rows), report)
    assert parsed == [(9001, 101, 1001), (9005, 101, 1001)]
    assert [line for line, _ in report.malformed] == [3, 4, 5, 6, 7, 8, 9]
    reasons = dict(report.malformed)
    assert reasons[3] == "click_id is not a positive integer: '\u00b2'"
    assert reasons[5] == "campaign_id is not a positive integer: '\u0661'"
    assert reasons[6].startswith("click_id out of range: '9999")
    assert reasons[8] == f"banner_id out of range: '{2**32}'"
