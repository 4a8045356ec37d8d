"""One supervisord `[program:x]` section: the options every local process shares, and the quoting
supervisord's configuration format needs."""

from __future__ import annotations

from collections.abc import Mapping

from cluster.topology import ROOT


def program(
    name: str,
    command: list[str],
    *,
    log: str,
    autostart: bool,
    priority: int,
    stopwait: int,
    env: Mapping[str, str] | None = None,
) -> str:
    lines = [
        f"[program:{name}]",
        "command=" + " ".join(_quote(part) for part in command),
        f"directory={ROOT}",
        f"autostart={'true' if autostart else 'false'}",
        "autorestart=true",
        "startsecs=1",
        "startretries=5",
        "stopsignal=TERM",
        f"stopwaitsecs={stopwait}",
        f"priority={priority}",
        "redirect_stderr=true",
        f"stdout_logfile={log}",
    ]
    if log == "/dev/stdout":
        lines.append("stdout_logfile_maxbytes=0")
    if env:
        lines.append("environment=" + ",".join(f'{k}="{_escape(v)}"' for k, v in env.items()))
    return "\n".join(lines) + "\n"


def _quote(part: str) -> str:
    return f'"{part}"' if " " in part or not part else _escape(part)


def _escape(value: str) -> str:
    # supervisord expands %(name)s in its values; a literal percent is doubled.
    return value.replace("%", "%%").replace('"', '\\"')
