"""Quartet's services: one package per service, and `common`, the kit they share."""

import os
from pathlib import Path

# prometheus_client's multiprocess mode (the image sets PROMETHEUS_MULTIPROC_DIR=/tmp/metrics)
# needs the directory before the first metric is created. gunicorn's config prepares it for the
# servers; this covers the image's one-shot commands (compose's `python -m services.demo_data`,
# rebalancing) on a fresh tmpfs.
_metrics_dir = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
if _metrics_dir:
    Path(_metrics_dir).mkdir(parents=True, exist_ok=True)
