"""The address guard on addresses directly: no connection is ever opened here."""

from __future__ import annotations

import ipaddress

import pytest

from pipeline.addresses import AddressPolicy, blocked_reason, check_address
from pipeline.errors import BlockedAddressError, ConfigError
from pipeline.fetching import registrable_domain


def no_dns(host: str, port: int) -> list[str]:
    raise AssertionError(f"IP literals must not be resolved ({host})")


def stub(answers: dict[str, list[str]]):  # type: ignore[no-untyped-def]
    return lambda host, port: answers[host]


@pytest.mark.parametrize(
    ("address", "why"),
    [
        ("10.1.2.3", "private"),
        ("172.16.0.1", "private"),
        ("172.31.255.255", "private"),
        ("192.168.1.1", "private"),
        ("127.0.0.1", "loopback"),
        ("127.8.9.10", "loopback"),
        ("169.254.169.254", "link-local"),
        ("100.64.0.1", "shared"),
        ("100.127.255.254", "shared"),
        ("0.0.0.0", "unspecified"),
        ("224.0.0.1", "multicast"),
        ("239.255.255.250", "multicast"),
        ("240.0.0.1", "reserved"),
        ("255.255.255.255", "reserved"),
        ("192.0.2.10", "documentation"),
        ("198.18.0.1", "benchmarking"),
        ("::1", "loopback"),
        ("::", "unspecified"),
        ("fe80::1", "link-local"),
        ("fc00::1", "unique-local"),
        ("fd12:3456::1", "unique-local"),
        ("fec0::1", "site-local"),
        ("ff02::1", "multicast"),
        ("2001:db8::", "documentation"),
        ("2001:db8::1", "documentation"),
        ("::ffff:127.0.0.1", "loopback"),
        ("::ffff:10.0.0.1", "private"),
        ("::ffff:169.254.169.254", "link-local"),
        ("2002:7f00:1::", "loopback"),  # 6to4 wrapping 127.0.0.1
        ("64:ff9b::a00:1", "private"),  # NAT64 wrapping 10.0.0.1
        ("::127.0.0.1", "IPv4-compatible"),
    ],
)
def test_non_public_addresses_are_refused(address: str, why: str) -> None:
    reason = blocked_reason(ipaddress.ip_address(address))
    assert reason is not None and why in reason

    with pytest.raises(BlockedAddressError, match="address guard refused"):
        check_address(address, 80, [], resolver=no_dns)


@pytest.mark.parametrize("address", ["93.184.216.34", "2606:4700::1", "8.8.8.8", "2a00:1450:4001::200e"])
def test_public_addresses_pass(address: str) -> None:
    assert blocked_reason(ipaddress.ip_address(address)) is None
    check_address("news.test", 443, [], resolver=stub({"news.test": [address]}))


def test_every_resolved_address_must_pass() -> None:
    mixed = stub({"news.test": ["93.184.216.34", "2606:4700::1", "192.168.0.7"]})

    with pytest.raises(BlockedAddressError, match="192.168.0.7"):
        check_address("news.test", 443, [], resolver=mixed)


def test_resolved_addresses_are_returned_for_pinning() -> None:
    policy = AddressPolicy([], stub({"news.test": ["93.184.216.34", "2606:4700::1"]}))

    assert policy.resolve("News.Test.", 443) == ["93.184.216.34", "2606:4700::1"]


def test_a_resolver_answer_that_is_not_an_address_is_refused() -> None:
    with pytest.raises(BlockedAddressError, match="non-address"):
        check_address("news.test", 80, [], resolver=stub({"news.test": ["evil.example"]}))


def test_unresolvable_names_raise_oserror() -> None:
    with pytest.raises(OSError):
        check_address("news.test", 80, [], resolver=stub({"news.test": []}))


def test_allowed_host_name_any_port() -> None:
    intranet = stub({"wiki.corp.test": ["10.0.0.5"]})

    check_address("wiki.corp.test", 8080, ["wiki.corp.test"], resolver=intranet)
    check_address("WIKI.corp.test", 443, ["wiki.corp.test"], resolver=intranet)
    with pytest.raises(BlockedAddressError):
        check_address("wiki.corp.test", 80, ["other.corp.test"], resolver=intranet)


def test_allowed_host_and_port() -> None:
    check_address("127.0.0.1", 8123, ["127.0.0.1:8123"], resolver=no_dns)
    check_address("localhost", 8123, ["127.0.0.1:8123"], resolver=stub({"localhost": ["127.0.0.1"]}))
    check_address("localhost", 8123, ["localhost:8123"], resolver=stub({"localhost": ["127.0.0.1", "::1"]}))
    check_address("::1", 8123, ["[::1]:8123"], resolver=no_dns)
    for port in (9999, 80):
        with pytest.raises(BlockedAddressError, match="loopback"):
            check_address("127.0.0.1", port, ["127.0.0.1:8123"], resolver=no_dns)


def test_allowed_cidr_networks() -> None:
    allowed = ["10.0.0.0/8", "fd00::/8"]

    check_address("10.200.0.1", 443, allowed, resolver=no_dns)
    check_address("fd00::5", 80, allowed, resolver=no_dns)
    check_address("nas.test", 80, allowed, resolver=stub({"nas.test": ["10.0.0.9", "fd00::9"]}))
    for address in ("192.168.0.1", "127.0.0.1", "fc00::1"):
        with pytest.raises(BlockedAddressError):
            check_address(address, 80, allowed, resolver=no_dns)


def test_allowance_for_one_address_does_not_cover_a_mixed_answer() -> None:
    answers = stub({"news.test": ["127.0.0.1", "10.0.0.1"]})

    with pytest.raises(BlockedAddressError, match="10.0.0.1"):
        check_address("news.test", 80, ["127.0.0.1"], resolver=answers)


@pytest.mark.parametrize("entry", ["", "10.0.0.0/33", "host:port", "a:b:c:zz", "host:70000", "[::1]x"])
def test_bad_allowed_hosts_entries_fail_loudly(entry: str) -> None:
    with pytest.raises(ConfigError, match="allowed_hosts"):
        AddressPolicy([entry])


@pytest.mark.parametrize(
    ("host", "domain"),
    [
        ("www.example.com", "example.com"),
        ("a.b.example.com", "example.com"),
        ("news.bbc.co.uk", "bbc.co.uk"),
        ("WWW.Example.COM.", "example.com"),
        ("127.0.0.1", "127.0.0.1"),
        ("[::1]", "::1"),
        ("localhost", "localhost"),
        ("intranet", "intranet"),
    ],
)
def test_registrable_domain(host: str, domain: str) -> None:
    assert registrable_domain(host) == domain
