"""What the local cluster is made of: every process, its port and its environment.

The services, their first ports and their secrets come from services/common/description.py (a
new service there is a new supervisord group here, nothing to add). What is only local stays
here: the shards', MariaDB's, the gateway's and the exporters' ports, and the worksim's fault
rates. Ports are fixed defaults shifted by QUARTET_PORT_OFFSET, so a second cluster (the tests')
can run beside a developer's `make run` without a clash.
"""

from __future__ import annotations

import os
import secrets
import shutil
from dataclasses import dataclass
from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from services.common import description

ROOT = Path(__file__).resolve().parent.parent

# The work simulator's fault rates in the local cluster (the aggregator's default upstream).
WORKSIM_DEFAULTS = {
    "WORKSIM_P_500": "0.05",
    "WORKSIM_P_429": "0.02",
    "WORKSIM_P_INVALID": "0.02",
    "WORKSIM_P_HANG": "0.01",
}
REDIS_BASE_PORTS = (7070, 7071)


class ClusterSettings(BaseSettings):
    """How `python -m cluster` lays the cluster out (env prefix QUARTET_)."""

    model_config = SettingsConfigDict(env_prefix="QUARTET_", extra="ignore", frozen=True)

    STATE_DIR: Path = ROOT / ".run"
    PORT_OFFSET: int = Field(0, ge=0, le=50_000)
    INSTANCES: int = Field(2, ge=1, le=16)
    WORKERS: int = Field(2, ge=1, le=64)
    # Passed to every service unchanged (e.g. COUNTER_FLUSH_INTERVAL_S=30).
    READY_TIMEOUT_S: float = 90.0
    # The public listener's per-client limits (the internal listener has none).
    GATEWAY_RATE: str = Field("100r/s", pattern=r"^\d+r/[sm]$")
    GATEWAY_BURST: int = Field(50, ge=0)
    # Gift-code claims per client on the public listener (docs/security.md).
    GATEWAY_CLAIM_RATE: str = Field("1r/s", pattern=r"^\d+r/[sm]$")
    GATEWAY_CLAIM_BURST: int = Field(5, ge=0)
    # Serve the admin routes on the public listener too (they still need ADMIN_TOKEN).
    GATEWAY_PUBLIC_ADMIN: bool = False
    GATEWAY_CONN: int = Field(10, ge=1)
    # Proxies whose X-Forwarded-For names the client (comma-separated CIDRs; none locally).
    TRUSTED_PROXIES: str = ""
    # Users the demo recommender data has (generated once, when the tables are empty).
    RECOMMENDER_USERS: int = Field(10_000, ge=1)
    # Each local shard's memory bound (redis-server --maxmemory): docs/reliability.md.
    REDIS_MAXMEMORY: str = Field("256mb", pattern=r"^\d+(kb|mb|gb)$")


@dataclass(frozen=True)
class Instance:
    service: str
    index: int
    port: int

    @property
    def name(self) -> str:
        return f"{self.service}_{self.index}"


class Topology:
    def __init__(self, settings: ClusterSettings) -> None:
        self.settings = settings
        offset = settings.PORT_OFFSET
        self.state = settings.STATE_DIR.resolve()
        self.gateway_port = 8080 + offset
        self.internal_port = 8081 + offset
        self.mysql_port = 3307 + offset
        self.worksim_port = description.WORKSIM.local_port + offset
        self.prometheus_port = 9090 + offset
        self.nginx_exporter_port = 9113 + offset
        self.redis_exporter_port = 9121 + offset
        self.mysqld_exporter_port = 9104 + offset
        self.mtail_port = 3903 + offset
        self.redis_ports = [port + offset for port in REDIS_BASE_PORTS]
        # description.SERVICES read here, not imported: a test can describe one more service.
        self.instances = [
            Instance(spec.name, i, spec.local_port + offset + i - 1)
            for spec in description.SERVICES
            for i in range(1, settings.INSTANCES + 1)
        ]

    # --- names and paths ----------------------------------------------------------------

    @property
    def shard_names(self) -> list[str]:
        return [f"redis_{port}" for port in self.redis_ports]

    @property
    def redis_shards(self) -> str:
        return ",".join(
            f"{name}=redis://127.0.0.1:{port}"
            for name, port in zip(self.shard_names, self.redis_ports, strict=True)
        )

    @property
    def secrets_dir(self) -> Path:
        return self.state / "secrets"

    @property
    def mysql_socket(self) -> Path:
        return self.state / "mariadb" / "mysqld.sock"

    @property
    def supervisor_conf(self) -> Path:
        return self.state / "supervisord.conf"

    @property
    def supervisor_pidfile(self) -> Path:
        return self.state / "supervisord.pid"

    @property
    def gateway_url(self) -> str:
        return f"http://127.0.0.1:{self.gateway_port}"

    def listen_ports(self, *, private_mysql: bool) -> list[int]:
        """Every port this cluster listens on (MariaDB's only when it runs a private one)."""
        ports = [self.gateway_port, self.internal_port, self.worksim_port, *self.redis_ports]
        ports += [
            self.prometheus_port,
            self.nginx_exporter_port,
            self.redis_exporter_port,
            self.mysqld_exporter_port,
            self.mtail_port,
        ]
        return (
            ports + [i.port for i in self.instances] + ([self.mysql_port] if private_mysql else [])
        )

    def instances_of(self, service: str) -> list[Instance]:
        return [i for i in self.instances if i.service == service]

    # --- secrets ----------------------------------------------------------------------------

    def secret(self, name: str) -> str:
        """A local secret under .run/secrets, generated on first use (mode 0600)."""
        path = self.secrets_dir / name
        if not path.exists():
            self.secrets_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
            path.write_text(secrets.token_urlsafe(32))
            path.chmod(0o600)
        return path.read_text().strip()

    def banner_data(self) -> list[Path]:
        """The datasets the banner service serves: $BANNER_DATA_DIR (one folder, or several
        separated by ':' like PATH, whose ids must not overlap), else generated data."""
        given = [part for part in os.environ.get("BANNER_DATA_DIR", "").split(os.pathsep) if part]
        return [Path(part).resolve() for part in given] or [self.generated_banner_data]

    @property
    def generated_banner_data(self) -> Path:
        """Where the demo banner dataset is generated, once, when nothing else is named."""
        return self.state / "banner-data"

    def admin_token(self) -> str:
        return os.environ.get("ADMIN_TOKEN") or self.secret("admin_token")

    def private_mysql_dsn(self, user: str = "quartet") -> str:
        password = self.secret(f"mysql_{user}_password" if user != "quartet" else "mysql_password")
        return f"mysql://{user}:{password}@127.0.0.1:{self.mysql_port}/quartet"


def which(binary: str) -> str:
    found = shutil.which(binary) or shutil.which(binary, path="/usr/sbin:/sbin")
    if not found:
        raise SystemExit(f"{binary} is not installed; run scripts/bootstrap.sh (as root)")
    return found
