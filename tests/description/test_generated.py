"""Every file generated from services/common/description.py is current, says so in its first
line, and the hand-written gateway files agree with the description. Pure: no cluster."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from cluster import gateway_files, generate, generated_region
from services.common import description

ROOT = Path(__file__).resolve().parents[2]
GENERATED = generate.files()
# Files of which only a region is generated (the rest is hand-written around it).
REGION = re.compile(
    rf"^[ \t]*# BEGIN [\w-]+ \(generated from {re.escape(generated_region.SOURCE)} by "
    rf"`{re.escape(generated_region.COMMAND)}`\)$",
    re.M,
)


@pytest.mark.parametrize("path", sorted(GENERATED))
def test_every_generated_file_is_current(path: str) -> None:
    on_disk = (ROOT / path).read_text() if (ROOT / path).is_file() else None
    assert on_disk == GENERATED[path], f"{path} is stale: run `python -m cluster.generate`"


@pytest.mark.parametrize("path", sorted(p for p in GENERATED if not p.endswith(".json")))
def test_every_generated_file_says_where_it_comes_from(path: str) -> None:
    text = GENERATED[path]
    first = text.splitlines()[0]
    whole = generated_region.SOURCE in first and generated_region.COMMAND in first
    assert whole or REGION.search(text), (
        f"{path}: start it with a comment naming {generated_region.SOURCE} and "
        f"`{generated_region.COMMAND}` (or mark its generated region)"
    )


def test_check_passes_on_the_repository_and_lists_what_is_stale(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert generate.main(["--check"]) == 0
    # An empty tree has every generated file missing: --check would name each of them.
    assert generate.stale(tmp_path) == sorted(GENERATED)


def test_every_generator_is_collected() -> None:
    # The nginx files here, the manifests and the monitoring configuration (cluster/generate.py).
    assert set(generate.generators()) == set(generate.GENERATORS)
    assert {p for p in GENERATED if p.startswith("nginx/")} == set(gateway_files.generated())


def test_an_absent_generator_module_is_skipped(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(generate, "GENERATORS", (*generate.GENERATORS, "cluster.not_written_yet"))
    assert "cluster.not_written_yet" not in generate.generators()


# --- the hand-written nginx files agree with the description ------------------------------------


def _hand_written_nginx() -> dict[str, str]:
    files = {
        str(p.relative_to(ROOT)): p.read_text()
        for p in (ROOT / "nginx").rglob("*")
        if p.is_file() and p.suffix in {".conf", ".template"}
    }
    return {path: text for path, text in files.items() if not text.startswith("# Generated")}


def test_hand_written_nginx_files_proxy_only_to_described_services() -> None:
    upstreams = set(description.names())
    for path, text in _hand_written_nginx().items():
        named = set(re.findall(r"proxy_pass http://([a-z_]+)", text))
        assert named <= upstreams, f"{path} proxies to {named - upstreams}, not in the description"


def test_no_described_route_is_also_written_by_hand() -> None:
    # One fact in one place: a route of the description lives only in a generated file.
    routes = {r.match for spec in description.SERVICES for r in spec.routes}
    for path, text in _hand_written_nginx().items():
        for match in re.findall(r"^\s*location\s+(.+?)\s*\{", text, re.M):
            assert match not in routes, (
                f"{path}: `location {match}` is a route of the description; drop it here"
            )


def test_the_container_gateway_serves_the_upstreams_of_the_template() -> None:
    # container-start.sh takes its service list from the generated template, not a copy.
    script = (ROOT / "nginx" / "container-start.sh").read_text()
    assert "counter banner" not in script
    assert 'SERVICES=$(upstreams_in "$prefix/upstreams.conf.template")' in script
    template = GENERATED["nginx/upstreams.conf.template"]
    assert re.findall(r"^upstream (\S+) \{", template, re.M) == list(description.names())
