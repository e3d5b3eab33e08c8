"""Reading our Prometheus metrics: one parser (prometheus_client's) for every test and benchmark."""

from __future__ import annotations

import httpx
from prometheus_client.parser import text_string_to_metric_families


def metric_value(text: str, name: str, **labels: str) -> float:
    """Sum of the samples named `name` (the full sample name, e.g. `x_total` or `x_bucket`) in a
    Prometheus text exposition whose labels include `labels`."""
    return float(
        sum(
            sample.value
            for family in text_string_to_metric_families(text)
            for sample in family.samples
            if sample.name == name and all(sample.labels.get(k) == v for k, v in labels.items())
        )
    )


def scrape(url: str, name: str, **labels: str) -> float:
    """`metric_value` of what `url` (a /metrics endpoint) serves now; httpx.HTTPError when it
    cannot be read (callers waiting for a process to come up treat that as "not yet")."""
    response = httpx.get(url, timeout=5)
    response.raise_for_status()
    return metric_value(response.text, name, **labels)
