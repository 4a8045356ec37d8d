"""The private MariaDB of the local cluster: created under the state directory on first start,
provisioned with a `quartet` database and user (password in .run/secrets/mysql_password), and
the flags supervisord runs it with."""

from __future__ import annotations

import getpass
import os
import subprocess
import time

import pymysql

from cluster.topology import Topology, which
from services.common.mysql import connect_blocking


def reachable(dsn: str, timeout_s: float = 2.0) -> bool:
    try:
        conn = connect_blocking(dsn, timeout_s=timeout_s)
    except pymysql.Error:
        return False
    conn.close()
    return True


def initialise(topo: Topology) -> None:
    """Create the data directory once (mariadb-install-db); later starts reuse it."""
    data = topo.state / "mariadb" / "data"
    if (data / "mysql").is_dir():
        return
    data.mkdir(parents=True, exist_ok=True)
    print("[cluster] creating a private MariaDB in", data, flush=True)
    args = [
        which("mariadb-install-db"),
        "--no-defaults",
        f"--datadir={data}",
        "--auth-root-authentication-method=socket",
        "--skip-test-db",
    ]
    if os.geteuid() == 0:
        args.append("--user=root")
    result = subprocess.run(args, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise SystemExit(f"mariadb-install-db failed:\n{result.stdout}\n{result.stderr}")


def provision(topo: Topology, timeout_s: float) -> None:
    """Wait for the private server, then make sure the database and user exist."""
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            # The install created a socket-authenticated account for the user who ran it.
            conn = pymysql.connect(
                unix_socket=str(topo.mysql_socket), user=getpass.getuser(), connect_timeout=2
            )
            break
        except pymysql.Error as exc:
            if time.monotonic() > deadline:
                raise SystemExit(f"the private MariaDB did not start: {exc}") from exc
            time.sleep(0.3)
    password = topo.secret("mysql_password")
    try:
        with conn.cursor() as cur:
            cur.execute(
                "CREATE DATABASE IF NOT EXISTS quartet"
                " CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci"
            )
            for host in ("127.0.0.1", "localhost"):
                cur.execute(
                    "CREATE USER IF NOT EXISTS 'quartet'@%s IDENTIFIED BY %s", (host, password)
                )
                cur.execute("ALTER USER 'quartet'@%s IDENTIFIED BY %s", (host, password))
                cur.execute("GRANT ALL PRIVILEGES ON quartet.* TO 'quartet'@%s", (host,))
                # Tests count the queries a service sends through performance_schema.
                cur.execute("GRANT SELECT ON performance_schema.* TO 'quartet'@%s", (host,))
            # The metrics exporter reads server status, nothing of the data.
            exporter = topo.secret("mysql_exporter_password")
            cur.execute(
                "CREATE USER IF NOT EXISTS 'exporter'@'127.0.0.1' IDENTIFIED BY %s", (exporter,)
            )
            cur.execute("ALTER USER 'exporter'@'127.0.0.1' IDENTIFIED BY %s", (exporter,))
            cur.execute("GRANT PROCESS, REPLICATION CLIENT ON *.* TO 'exporter'@'127.0.0.1'")
            cur.execute("GRANT SELECT ON performance_schema.* TO 'exporter'@'127.0.0.1'")
        conn.commit()
    finally:
        conn.close()


def mariadb_args(topo: Topology) -> list[str]:
    """The private server's flags (supervisord runs `mariadbd` with them)."""
    data = topo.state / "mariadb"
    args = [
        "--no-defaults",
        f"--datadir={data / 'data'}",
        f"--socket={topo.mysql_socket}",
        f"--pid-file={data / 'mariadb.pid'}",
        f"--port={topo.mysql_port}",
        "--bind-address=127.0.0.1",
        "--skip-name-resolve",
        "--max-connections=300",
        "--innodb-buffer-pool-size=256M",
        "--innodb-flush-log-at-trx-commit=1",
        "--character-set-server=utf8mb4",
        "--collation-server=utf8mb4_unicode_ci",
    ]
    if os.geteuid() == 0:
        args.append("--user=root")
    return args
