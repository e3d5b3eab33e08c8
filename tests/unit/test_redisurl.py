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
        ("redis+cluster://n1:7000/1", "Cluster has only 0"),
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
