"""The Redis URL forms the gateway and the operator share (llmplatform.contract.redisurl)."""

from __future__ import annotations

import argparse

import pytest

from llmplatform.contract import redisurl


def test_one_server_is_left_to_redis_py() -> None:
    for url, tls in (("redis://h:6379/0", False), ("rediss://:pw@h:6380/2", True)):
        target = redisurl.parse(url)
        assert (target.mode, target.tls, target.url) == ("single", tls, url)


def test_sentinel_hosts_service_db_and_options() -> None:
    target = redisurl.parse(
        "rediss+sentinel://:p%40ss@s1,s2:26380,[::1]:26381/my-primary/3?sentinel_password=x"
    )
    assert target.mode == "sentinel" and target.tls
    assert target.hosts == (("s1", 26379), ("s2", 26380), ("::1", 26381))
    assert (target.service, target.db, target.password) == ("my-primary", 3, "p@ss")
    assert dict(target.options) == {"sentinel_password": "x"}


def test_cluster_seed_nodes() -> None:
    target = redisurl.parse("redis+cluster://n1:7000,n2:7001")
    assert (target.mode, target.tls, target.hosts, target.db) == (
        "cluster",
        False,
        (("n1", 7000), ("n2", 7001)),
        0,
    )
    assert redisurl.parse("redis+cluster://n1/0").hosts == (("n1", 6379),)


@pytest.mark.parametrize(
    ("url", "says"),
    [
        ("http://h:6379", "must start with one of"),
        ("h:6379", "must start with one of"),
        ("redis+sentinel://s1:26379", "needs the service name"),
        ("redis+sentinel://s1:x/svc", "bad host"),
        ("redis+cluster://n1:7000/1", "Cluster has only database 0"),
        ("redis+sentinel://s1/svc/x", "bad database 'x' (want a number)"),
        ("redis+cluster://n1:7000?tls=1", "unknown option(s) tls"),
        ("rediss+cluster://n1:7000?ssl_cert_reqs=maybe", "ssl_cert_reqs"),
    ],
)
def test_bad_urls_say_what_is_wrong(url: str, says: str) -> None:
    with pytest.raises(ValueError, match=None) as err:
        redisurl.parse(url)
    assert says in str(err.value)


def test_the_flag_error_never_shows_the_password() -> None:
    with pytest.raises(argparse.ArgumentTypeError) as err:
        redisurl.argument("redis+cluster://:hunter2@n1:7000/5")
    assert "hunter2" not in str(err.value)
    assert redisurl.argument("redis://:hunter2@h/0") == "redis://:hunter2@h/0"


def test_connect_builds_each_client_from_the_url_without_connecting() -> None:
    import redis.asyncio as aioredis

    single = redisurl.connect(aioredis, "redis://h:6379/1", 0.5, 2.0, max_connections=8)
    assert isinstance(single.connection_pool, aioredis.BlockingConnectionPool)
    assert single.connection_pool.max_connections == 8
    assert single.connection_pool.connection_kwargs["socket_connect_timeout"] == 2.0

    cluster = redisurl.connect(aioredis, "rediss+cluster://:pw@n1:7000,n2:7001?ssl_cert_reqs=none", 0.5)
    assert isinstance(cluster, aioredis.RedisCluster)
    seeds = cluster.nodes_manager
    assert {(n.host, n.port) for n in seeds.startup_nodes.values()} == {("n1", 7000), ("n2", 7001)}
    assert seeds.connection_kwargs["connection_class"] is aioredis.SSLConnection
    assert (seeds.connection_kwargs["ssl_cert_reqs"], seeds.connection_kwargs["password"]) == ("none", "pw")

    primary = redisurl.connect(
        aioredis, "rediss+sentinel://:pw@s1:26379,s2/svc/2?sentinel_password=sp", 0.5, 2.0
    )
    pool = primary.connection_pool
    assert (pool.service_name, pool.connection_kwargs["db"], pool.connection_kwargs["password"]) == (
        "svc",
        2,
        "pw",
    )
    assert pool.connection_class is aioredis.sentinel.SentinelManagedSSLConnection
    sentinels = pool.sentinel_manager.sentinels
    assert [s.connection_pool.connection_kwargs["port"] for s in sentinels] == [26379, 26379]
    assert sentinels[0].connection_pool.connection_kwargs["password"] == "sp"
