"""Docker access for the read path: container facts from the local engine, one job per module.

Why it exists: the ``containers`` tools, the container resource and its
subscriptions need compact, typed, bounded and redacted answers from the Docker
engine. This package is the one place that talks to it; the public names are
re-exported here so callers write ``from tailops.monitor import containers as mc``.

- :mod:`.engine`: the client, every call (translated errors), fan-out, health;
- :mod:`.errors`: SDK exceptions → tailops errors, in one place;
- :mod:`.events`: the one follower of the engine's container events;
- :mod:`.inspect_cache`: inspect results kept current by those events;
- :mod:`.models`: the typed answers;  :mod:`.values`: engine values → shown values;
- :mod:`.listing`, :mod:`.details`, :mod:`.stats`, :mod:`.images`, :mod:`.networks`:
  one engine endpoint each, with a pure parser for recorded-data tests;
- :mod:`.frames`, :mod:`.reader`, :mod:`.logs`: log bytes → lines, the bounded
  read, and the two log tools.

What it must never do: change a container, image, network or volume. Start,
stop, restart, update and pull are catalog playbooks run by the change engine,
which this package never imports.
"""

from __future__ import annotations

from tailops.monitor.containers.details import container_state, details_from_inspect, inspect_container, inspect_raw
from tailops.monitor.containers.engine import DockerEngine, close_matches
from tailops.monitor.containers.errors import engine_exceptions, translate
from tailops.monitor.containers.events import ContainerEvents, EventSink
from tailops.monitor.containers.images import list_images
from tailops.monitor.containers.listing import CONTAINER_FILTERS, list_containers
from tailops.monitor.containers.logs import LINE_CHARS, analyze_logs, read_logs
from tailops.monitor.containers.models import (
    ContainerDetails,
    ContainerList,
    ContainerLogs,
    ContainerStats,
    ContainerStatsList,
    ContainerSummary,
    ImageList,
    NetworkList,
)
from tailops.monitor.containers.networks import list_networks
from tailops.monitor.containers.stats import container_stats
from tailops.monitor.containers.values import check_name, parse_when

__all__ = [
    "CONTAINER_FILTERS",
    "LINE_CHARS",
    "ContainerDetails",
    "ContainerEvents",
    "ContainerList",
    "ContainerLogs",
    "ContainerStats",
    "ContainerStatsList",
    "ContainerSummary",
    "DockerEngine",
    "EventSink",
    "ImageList",
    "NetworkList",
    "analyze_logs",
    "check_name",
    "close_matches",
    "container_state",
    "container_stats",
    "details_from_inspect",
    "engine_exceptions",
    "inspect_container",
    "inspect_raw",
    "list_containers",
    "list_images",
    "list_networks",
    "parse_when",
    "read_logs",
    "translate",
]
