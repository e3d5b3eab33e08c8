"""Which Redis holds the shared counters, from one URL: one server, Sentinel or Cluster.

Why in the contract: the gateway (asyncio client) and the operator (blocking client) must reach
the same Redis the same way from the same setting, and neither imports the other. The contract
imports no Redis client, so `connect` takes the client module (`redis` or `redis.asyncio`,
which have the same `Redis`, `Sentinel`, `RedisCluster` and `cluster.ClusterNode`).

URLs (a password in the user part applies to the Redis servers; `rediss` means TLS):
- `redis://[[user]:password@]host[:6379][/db]`, `rediss://...`: one server (redis-py's own
  `from_url`, with its query options);
- `redis+sentinel://[[user]:password@]host[:26379][,host[:port]...]/<service>[/db]`
  (`rediss+sentinel://`): the primary of `<service>` as the Sentinels report it, found again
  after a failover;
- `redis+cluster://[[user]:password@]host[:6379][,host[:port]...]` (`rediss+cluster://`):
  Redis Cluster, the hosts being seed nodes.
Query options of the Sentinel and Cluster forms: `sentinel_password` (Sentinels with their own
password), `ssl_ca_certs` (a CA bundle file) and `ssl_cert_reqs` (`required`, the default, or
`none`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

SINGLE, SENTINEL, CLUSTER = "single", "sentinel", "cluster"
SCHEMES = {
    "redis": (SINGLE, False),
    "rediss": (SINGLE, True),
    "redis+sentinel": (SENTINEL, False),
    "rediss+sentinel": (SENTINEL, True),
    "redis+cluster": (CLUSTER, False),
    "rediss+cluster": (CLUSTER, True),
}
OPTIONS = ("sentinel_password", "ssl_ca_certs", "ssl_cert_reqs")


@dataclass(frozen=True)
class RedisTarget:
    url: str
    mode: str
    tls: bool
    hosts: tuple[tuple[str, int], ...] = ()
    service: str = ""
    db: int = 0
    username: str | None = None
    password: str | None = None
    options: tuple[tuple[str, str], ...] = ()


def parse(url: str) -> RedisTarget:
    """The target a URL names; ValueError saying what is wrong (never echoing a password)."""
    scheme, sep, rest = url.partition("://")
    if not sep or scheme.lower() not in SCHEMES:
        raise ValueError(
            f"Redis URL must start with one of {', '.join(s + '://' for s in SCHEMES)} (got {scheme!r})"
        )
    mode, tls = SCHEMES[scheme.lower()]
    if mode == SINGLE:
        return RedisTarget(url=url, mode=mode, tls=tls)
    parts = urlsplit("x://" + rest)
    userinfo, _, hostlist = parts.netloc.rpartition("@")
    username, _, password = userinfo.partition(":") if userinfo else ("", "", "")
    default_port = 26379 if mode == SENTINEL else 6379
    hosts = []
    for item in hostlist.split(","):
        host, colon, port = item.rpartition(":") if not item.endswith("]") else (item, "", "")
        if not colon:
            host, port = item, str(default_port)
        if not host or not port.isdigit():
            raise ValueError(f"Redis {mode} URL: bad host {item!r} (want host:port, comma separated)")
        hosts.append((host.strip("[]"), int(port)))
    path = [p for p in parts.path.split("/") if p]
    service, db = "", 0
    if mode == SENTINEL:
        if not path:
            raise ValueError(
                "Redis sentinel URL needs the service name: redis+sentinel://host:26379/<service>[/db]"
            )
        service = unquote(path[0])
        path = path[1:]
    if path:
        if len(path) > 1 or not path[0].isdigit() or (mode == CLUSTER and path[0] != "0"):
            want = "Cluster has only database 0" if mode == CLUSTER else "want a number"
            raise ValueError(f"Redis {mode} URL: bad database {'/'.join(path)!r} ({want})")
        db = int(path[0])
    query = parse_qs(parts.query)
    unknown = sorted(set(query) - set(OPTIONS))
    if unknown:
        known = ", ".join(OPTIONS)
        raise ValueError(f"Redis {mode} URL: unknown option(s) {', '.join(unknown)} (known: {known})")
    if query.get("ssl_cert_reqs", ["required"])[-1] not in ("required", "none"):
        raise ValueError("Redis URL: ssl_cert_reqs must be required or none")
    return RedisTarget(
        url=url,
        mode=mode,
        tls=tls,
        hosts=tuple(hosts),
        service=service,
        db=db,
        username=unquote(username) or None,
        password=unquote(password) or None,
        options=tuple((k, v[-1]) for k, v in sorted(query.items())),
    )


def connect(
    lib: Any,
    url: str,
    timeout: float,
    connect_timeout: float | None = None,
    max_connections: int | None = None,
) -> Any:
    """A client of `lib` (the `redis` or `redis.asyncio` module) for the URL, every command
    bounded by `timeout` seconds and opening a connection (TLS handshake included) by
    `connect_timeout` (default: `timeout`). Sentinel: the primary's client, which asks the
    Sentinels again after a connection error, so a failover needs no restart.

    `max_connections` (one server only): at most that many connections, callers beyond them
    wait for a free one (up to `connect_timeout`) instead of opening more. Why: redis-py builds
    a TLS context per new connection (about 150 ms each on a loaded 2-core machine, on the event
    loop), so a burst of 20 concurrent calls on a cold `rediss://` pool timed out as a whole."""
    target = parse(url)
    connect_timeout = timeout if connect_timeout is None else connect_timeout
    common: dict[str, Any] = {"socket_timeout": timeout, "socket_connect_timeout": connect_timeout}
    if target.mode == SINGLE:
        if max_connections is None:
            return lib.Redis.from_url(url, **common)
        pool = lib.BlockingConnectionPool.from_url(
            url, max_connections=max_connections, timeout=connect_timeout, **common
        )
        return lib.Redis(connection_pool=pool)
    options = dict(target.options)
    auth = {"username": target.username, "password": target.password}
    tls: dict[str, Any] = {}
    if target.tls:
        tls = {"ssl": True, "ssl_cert_reqs": options.get("ssl_cert_reqs", "required")}
        if "ssl_ca_certs" in options:
            tls["ssl_ca_certs"] = options["ssl_ca_certs"]
    if target.mode == CLUSTER:
        nodes = [lib.cluster.ClusterNode(host, port) for host, port in target.hosts]
        return lib.RedisCluster(startup_nodes=nodes, **auth, **tls, **common)
    sentinel_kwargs = {"socket_timeout": timeout, "socket_connect_timeout": connect_timeout, **tls}
    if "sentinel_password" in options:
        sentinel_kwargs["password"] = options["sentinel_password"]
    sentinel = lib.Sentinel(list(target.hosts), sentinel_kwargs=sentinel_kwargs, **tls)
    return sentinel.master_for(target.service, db=target.db, **auth, **common)


def argument(url: str) -> str:
    """An argparse `type=` for Redis URL flags: the error names the problem, never the URL
    (which may hold a password)."""
    import argparse

    try:
        parse(url)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    return url
