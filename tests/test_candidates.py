"""Remote ICE candidates naming refused addresses are dropped before the server checks
them (media/candidates.py): unit tests of the policy, and a real aiortc room inside a
network namespace of the test's own, where decoy sockets on the refused addresses see
no STUN request while the allowed candidate connects."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from media.candidates import CandidatePolicy
from signaling.settings import Settings, SettingsError
from tests import netns

REPO = Path(__file__).resolve().parents[1]
NAMESPACE_SETUP = (
    "ip link set lo up && "
    "for a in 10.77.0.1 169.254.169.254 10.99.0.5; do ip addr add $a/32 dev lo; done"
)


@pytest.mark.skipif(not netns.available(), reason="needs network namespaces (root)")
def test_no_stun_check_goes_to_a_refused_candidate():
    """An offer naming the metadata address, loopback (the server announces 10.77.0.1)
    and a denied private network: the server checks none of them — decoy sockets there
    receive nothing — and connects over the offer's own candidate. Runs in its own
    network namespace, so nothing could leave the machine even if it did send."""
    script = f"{NAMESPACE_SETUP} && exec {sys.executable} -m tests.ice_probe"
    done = subprocess.run(
        ["unshare", "--net", "sh", "-c", script],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(done.stdout.splitlines()[-1])
    assert result["decoys"] == {"169.254.169.254": 0, "127.0.0.1": 0, "10.99.0.5": 0}
    assert result["checked"] == ["10.77.0.1"]
    assert result["connected"]


def test_default_policy_refuses_what_no_peer_may_name():
    """By default: no link-local or metadata, multicast, broadcast, unspecified,
    reserved, host names; private and public addresses pass."""
    policy = CandidatePolicy.for_server(("192.0.2.10",))
    for host in (
        "169.254.169.254",
        "169.254.1.1",
        "fe80::1",
        "fd00:ec2::254",
        "224.0.0.251",
        "ff02::1",
        "255.255.255.255",
        "0.0.0.0",  # noqa: S104 - an address refused, not bound
        "0.1.2.3",
        "::",
        "240.0.0.1",
        "::ffff:169.254.169.254",
        "127.0.0.1",
        "::1",
        "abc.local",
        "example.org",
        "",
    ):
        assert not policy.allows(host), host
    for host in ("10.1.2.3", "192.168.1.20", "172.16.0.5", "203.0.113.7", "2001:db8::5"):
        assert policy.allows(host), host


def test_loopback_only_when_every_announced_address_is_loopback():
    """A server announcing loopback (tests, demos on one machine) accepts loopback
    candidates; one announcing nothing or a real address does not."""
    assert CandidatePolicy.for_server(("127.0.0.1",)).allows("127.0.0.1")
    assert not CandidatePolicy.for_server(()).allows("127.0.0.1")
    assert not CandidatePolicy.for_server(("127.0.0.1", "10.0.0.2")).allows("127.0.0.1")


def test_settings_add_denied_and_allowed_networks():
    """Denied networks are refused; allowed networks pass whatever else applies."""
    policy = CandidatePolicy.for_server(
        (), allowed=("169.254.10.0/24", "10.5.0.0/16"), denied=("10.0.0.0/8",)
    )
    assert not policy.allows("10.1.2.3")
    assert policy.allows("10.5.0.9")
    assert policy.allows("169.254.10.3")
    assert not policy.allows("169.254.169.254")


def test_filter_sdp_drops_only_refused_candidate_lines():
    """Only the refused candidate lines go; everything else is kept byte for byte."""
    offer = (
        "v=0\r\nm=video 9 UDP/TLS/RTP/SAVPF 97\r\n"
        "a=candidate:1 1 udp 2130706431 10.0.0.7 5000 typ host\r\n"
        "a=candidate:2 1 udp 2130706431 169.254.169.254 80 typ host\r\n"
        "a=candidate:3 1 udp 1694498815 203.0.113.9 6000 typ srflx raddr 10.0.0.7 rport 5000\r\n"
        "a=candidate:4 1 udp\r\n"
        "a=end-of-candidates\r\n"
    )
    text, dropped = CandidatePolicy.for_server(()).filter_sdp(offer)
    assert dropped == ["169.254.169.254", ""]
    assert text == offer.replace(
        "a=candidate:2 1 udp 2130706431 169.254.169.254 80 typ host\r\n", ""
    ).replace("a=candidate:4 1 udp\r\n", "")


def test_a_bad_network_setting_is_refused(tmp_path: Path):
    """A network setting that is not CIDR fails at start-up, naming the setting."""
    with pytest.raises(SettingsError, match="ice_denied_networks"):
        Settings(data_dir=tmp_path, ice_denied_networks=("10.0.0.0/33",))
    assert Settings(data_dir=tmp_path, ice_allowed_networks=("10.1.0.0/16",))
