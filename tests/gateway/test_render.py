"""nginx/render.sh, the one renderer of the gateway's templates: the local cluster's values give a
configuration nginx accepts, the admin and proxy settings become directives, and a value the
templates need but nobody set is an error, not an empty directive."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

from cluster import gateway
from cluster.topology import ROOT, ClusterSettings, Topology
from services.common import description


def _rendered(tmp_path: Path, *, public_admin: bool = False, trusted: str = "") -> Path:
    settings = ClusterSettings(
        STATE_DIR=tmp_path / "state",
        PORT_OFFSET=13300,
        GATEWAY_PUBLIC_ADMIN=public_admin,
        TRUSTED_PROXIES=trusted,
    )
    topo = Topology(settings)
    return gateway.render_nginx(topo)


def test_every_template_is_filled_and_the_upstreams_are_the_instances(tmp_path: Path) -> None:
    prefix = _rendered(tmp_path)
    assert list(prefix.rglob("*.template")) == []
    upstreams = (prefix / "upstreams.conf").read_text()
    assert "${" not in upstreams
    topo = Topology(ClusterSettings(STATE_DIR=tmp_path / "state", PORT_OFFSET=13300))
    for spec in description.SERVICES:
        block = re.search(rf"^upstream {spec.name} \{{(.*?)^\}}", upstreams, re.M | re.S)
        assert block, f"no upstream {spec.name}"
        ports = [int(port) for port in re.findall(r"server 127\.0\.0\.1:(\d+) ", block[1])]
        assert ports == [i.port for i in topo.instances_of(spec.name)]


def test_admin_routes_and_trusted_proxies_become_directives(tmp_path: Path) -> None:
    closed = _rendered(tmp_path / "closed")
    assert "include gateway/admin-closed.conf;" in (closed / "gateway/servers.conf").read_text()
    assert not re.search(r"^set_real_ip_from", (closed / "gateway/limits.conf").read_text(), re.M)
    opened = _rendered(tmp_path / "open", public_admin=True, trusted="10.0.0.0/8, 192.168.0.0/16")
    servers = (opened / "gateway/servers.conf").read_text()
    assert servers.count("include gateway/admin.conf;") == 2  # public and internal
    limits = (opened / "gateway/limits.conf").read_text()
    assert "set_real_ip_from 10.0.0.0/8;\nset_real_ip_from 192.168.0.0/16;\n" in limits


def test_a_value_nobody_set_is_an_error(tmp_path: Path) -> None:
    prefix = tmp_path / "nginx"
    shutil.copytree(ROOT / "nginx", prefix)
    topo = Topology(ClusterSettings(STATE_DIR=tmp_path / "state", PORT_OFFSET=13300))
    values = gateway.values(topo)
    del values["BANNER_SERVERS"]
    with pytest.raises(SystemExit, match=r"\$BANNER_SERVERS, which is not set"):
        gateway.render(prefix, values)


@pytest.mark.cluster
def test_nginx_accepts_the_rendered_configuration(tmp_path: Path) -> None:
    prefix = _rendered(tmp_path, public_admin=True, trusted="10.0.0.0/8")
    result = subprocess.run(
        ["nginx", "-t", "-q", "-p", f"{prefix}/", "-c", str(prefix / "nginx.conf")],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr
