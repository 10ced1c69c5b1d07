"""The signalling protocol without sockets: the examples of docs/protocol.md are what
``signaling.review.protocol`` parses and writes, and every refusal has its stable code.

The examples are read from the markdown itself (a ``<!-- example: client chat -->`` line
followed by a fenced json block), so the documentation and the code cannot drift apart.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import re
from pathlib import Path
from typing import Any

import pytest

from recorder.clock import SystemClock
from signaling.review import protocol
from signaling.review.join_tokens import Grant, JoinTokens
from signaling.storage.bus import InProcessBus
from signaling.web.errors import NotAuthenticated
from signaling.web.messages import MESSAGES

DOC = Path(__file__).resolve().parent.parent / "docs" / "protocol.md"
EXAMPLE = re.compile(
    r"^<!-- example: (client|server) ([a-z_]+)(?: ([a-z_]+))? -->\n```json\n(.*?)\n```$",
    re.MULTILINE | re.DOTALL,
)
ERROR_TABLE = re.compile(r"<!-- error table -->\n(.*?)<!-- /error table -->", re.DOTALL)
ERROR_ROW = re.compile(r"^\| `([a-z_]+)` \| (.+?) \| .+ \|$", re.MULTILINE)

SERVER_MESSAGES: dict[str, type[protocol.Message]] = {
    m.type: m
    for m in (
        protocol.Joined,
        protocol.Answer,
        protocol.Slots,
        protocol.Participants,
        protocol.State,
        protocol.ChatPosted,
        protocol.ChatHistory,
        protocol.MaterialMarked,
        protocol.DecisionRecorded,
        protocol.PeerMediaState,
        protocol.Error,
        protocol.Pong,
        protocol.Queue,
        protocol.StillRequested,
        protocol.StillAdded,
        protocol.Notice,
    )
}
NEVER_SENT = {"peer_media_state"}
"""Defined in protocol.py but not sent by the server in v1 (the doc says so)."""
REFUSAL_CODES = ("too_large", "bad_json", "bad_version", "unknown_type", "bad_field", "too_long")


def load_examples() -> dict[tuple[str, str, str], str]:
    """(direction, type, label) → the raw JSON text of each marked example."""
    text = DOC.read_text("utf-8")
    examples: dict[tuple[str, str, str], str] = {}
    for match in EXAMPLE.finditer(text):
        key = (match[1], match[2], match[3] or "")
        assert key not in examples, f"two examples marked {key}"
        examples[key] = match[4]
    markers = re.findall(r"^<!-- example:", text, re.MULTILINE)
    assert len(markers) == len(examples), "a marker line without a json block after it"
    return examples


EXAMPLES = load_examples()
CLIENT_EXAMPLES = {key: raw for key, raw in EXAMPLES.items() if key[0] == "client"}
SERVER_EXAMPLES = {key: raw for key, raw in EXAMPLES.items() if key[0] == "server"}


def example_id(key: tuple[str, str, str]) -> str:
    return " ".join(part for part in key if part)


def refused(raw: str | bytes) -> protocol.ProtocolError:
    with pytest.raises(protocol.ProtocolError) as caught:
        protocol.parse(raw)
    return caught.value


def message(**body: Any) -> str:
    return json.dumps({"v": 1, **body}, ensure_ascii=False)


def fields_of(msg: protocol.Message) -> dict[str, Any]:
    return dataclasses.asdict(msg)


# -- the documented examples ----------------------------------------------------------


def test_docs_show_every_client_message():
    """docs/protocol.md has one marked example of each message a client may send."""
    documented = {kind for _, kind, _ in CLIENT_EXAMPLES}
    assert documented == set(protocol.CLIENT_MESSAGES)


def test_docs_show_every_server_message_the_server_sends():
    """docs/protocol.md has a marked example of each server message, except the one the
    server never sends."""
    documented = {kind for _, kind, _ in SERVER_EXAMPLES}
    assert documented == set(SERVER_MESSAGES) - NEVER_SENT


@pytest.mark.parametrize("key", sorted(CLIENT_EXAMPLES), ids=example_id)
def test_client_example_parses(key):
    """Each client example parses into its message class with exactly its fields."""
    raw = CLIENT_EXAMPLES[key]
    body = json.loads(raw)
    msg = protocol.parse(raw)
    assert type(msg) is protocol.CLIENT_MESSAGES[key[1]]
    assert fields_of(msg) == {k: v for k, v in body.items() if k not in ("v", "type")}


@pytest.mark.parametrize("key", sorted(CLIENT_EXAMPLES), ids=example_id)
def test_client_example_round_trips(key):
    """A parsed client example writes back the same JSON, which parses to the same
    message."""
    msg = protocol.parse(CLIENT_EXAMPLES[key])
    assert json.loads(msg.to_json()) == json.loads(CLIENT_EXAMPLES[key])
    assert protocol.parse(msg.to_json()) == msg


@pytest.mark.parametrize("key", sorted(SERVER_EXAMPLES), ids=example_id)
def test_server_example_is_what_the_server_writes(key):
    """Each server example is exactly what its dataclass writes, built from the same
    fields: no field missing, none extra, none renamed."""
    body = json.loads(SERVER_EXAMPLES[key])
    assert body["v"] == protocol.VERSION
    cls = SERVER_MESSAGES[key[1]]
    fields = {k: v for k, v in body.items() if k not in ("v", "type")}
    assert json.loads(cls(**fields).to_json()) == body


def test_server_examples_show_the_real_chinese_texts():
    """The state and error examples carry the messages the server really sends."""
    for (_, kind, _), raw in SERVER_EXAMPLES.items():
        body = json.loads(raw)
        if kind == "state":
            assert body["message"] == MESSAGES[f"state_{body['state']}"]
        elif kind == "error":
            assert body["message"] == MESSAGES[body["code"]]


def test_error_table_matches_the_code():
    """The error table of docs/protocol.md gives each code its exact Chinese message and
    lists every code the signalling socket can send."""
    table = ERROR_TABLE.search(DOC.read_text("utf-8"))
    assert table is not None
    rows = dict(ERROR_ROW.findall(table[1]))
    for code, text in rows.items():
        assert text == MESSAGES[code], code
    socket_codes = {f"protocol_{code}" for code in REFUSAL_CODES} | {
        "join_timeout",
        "out_of_order",
        "rate_limited",
        "not_allowed",
        "not_live",
        "media_failed",
        "recording_failed",
        "source_not_allowed",
        "bad_sdp",
        "bad_publish_map",
        "token_expired",
        "token_invalid",
        "token_used",
        "session_not_found",
        "login_ended",
        "server_restart",
        "approver_present",
    }
    assert socket_codes <= set(rows)


def section(title: str) -> str:
    """The text of one ``### title`` section of docs/protocol.md."""
    text = DOC.read_text("utf-8")
    start = text.index(f"\n### {title}\n")
    return text[start : text.index("\n#", start + 1)]


def test_docs_say_what_the_code_does_about_ending_hanging_up_and_token_reuse():
    """Who may end (the accepting approver and co-approvers), what a clerk's hang-up
    while waiting does (cancels), and token reuse (refused, token_used) are documented as
    the code does them (tests/test_review_faults.py and test_review_sessions.py prove
    the behaviour)."""
    text = DOC.read_text("utf-8")
    assert "co-approvers included, gets `not_allowed`" not in text
    assert "accepting approver or a co-approver" in section("end")
    assert "does **not**\ncancel it" not in section("hangup")
    assert "`cancelled_by_clerk`" in section("hangup")
    assert "It is not single-use" not in text
    assert "`token_used`" in text.split("## 2.")[0]


# -- writing and round trips ----------------------------------------------------------


def test_to_json_is_compact_versioned_and_keeps_chinese():
    """to_json writes "v" and "type" first, no spaces, and Chinese as is (not \\u
    escapes)."""
    assert protocol.Chat("请看第二页").to_json() == '{"v":1,"type":"chat","text":"请看第二页"}'
    assert protocol.Pong().to_json() == '{"v":1,"type":"pong"}'


@pytest.mark.parametrize(
    "msg",
    [
        protocol.Join("a.b.c"),
        protocol.Offer("v=0\r\n", {}),
        protocol.Offer("v=0\r\n", {"0": "face", "1": "document", "2": "audio"}),
        protocol.Chat("好的"),
        protocol.MediaState(audio=True, face=False, document=True),
        protocol.Hangup(),
        protocol.End(),
        protocol.Ping(),
        protocol.StillRequest(None),
        protocol.StillRequest(12),
    ],
    ids=lambda m: m.type,
)
def test_every_client_message_round_trips(msg):
    """Whatever a client message writes, parse reads back as an equal message."""
    assert protocol.parse(msg.to_json()) == msg
    assert protocol.parse(msg.to_json().encode()) == msg


def test_bytes_parse_like_text():
    """A message given as UTF-8 bytes parses like the same message as text."""
    raw = message(type="chat", text="你好")
    assert protocol.parse(raw.encode()) == protocol.parse(raw) == protocol.Chat("你好")


def test_unknown_fields_are_ignored():
    """Fields a message does not define are ignored, so clients may add their own."""
    assert protocol.parse(message(type="ping", client="hall-terminal/2.1")) == protocol.Ping()
    raw = message(type="chat", text="好", reply_to=7)
    assert protocol.parse(raw) == protocol.Chat("好")


def test_chat_text_is_trimmed():
    """Blanks around a chat text are removed; the text inside is kept."""
    assert protocol.parse(message(type="chat", text="  请看 第二页\n")) == protocol.Chat(
        "请看 第二页"
    )


def test_chat_of_exactly_the_limit_is_accepted():
    """A chat text of MAX_CHAT_CHARS characters (Chinese ones count as one) is fine."""
    text = "长" * protocol.MAX_CHAT_CHARS
    assert protocol.parse(message(type="chat", text=text)) == protocol.Chat(text)


def test_empty_publish_map_is_accepted():
    """An offer that publishes nothing (an auditor's) has an empty publish map."""
    msg = protocol.parse(message(type="offer", sdp="v=0\r\n", publish={}))
    assert msg == protocol.Offer("v=0\r\n", {})


def test_publish_mids_are_strings_of_up_to_16_characters():
    """Mids are JSON object keys, hence strings ("0" stays "0"); 16 characters is the
    longest accepted."""
    mid = "m" * 16
    msg = protocol.parse(message(type="offer", sdp="v=0", publish={"0": "face", mid: "audio"}))
    assert msg == protocol.Offer("v=0", {"0": "face", mid: "audio"})


# -- refusals -------------------------------------------------------------------------


def test_every_refusal_code_has_a_chinese_message():
    """The server sends each parse refusal as error code protocol_<code>; each of those
    has a Chinese message."""
    for code in REFUSAL_CODES:
        assert f"protocol_{code}" in MESSAGES


def test_protocol_error_carries_code_and_detail():
    """A ProtocolError is a ValueError with the stable code and the offending field."""
    error = refused(message(type="chat", text=5))
    assert isinstance(error, ValueError)
    assert (error.code, error.detail) == ("bad_field", "text")
    assert str(error) == "bad_field: text"


def test_oversized_message_is_refused():
    """A message over MAX_MESSAGE_BYTES is refused before it is decoded, as text or as
    bytes."""
    raw = message(type="ping", pad="x" * protocol.MAX_MESSAGE_BYTES)
    assert refused(raw).code == "too_large"
    assert refused(raw.encode()).code == "too_large"
    assert refused("x" * (protocol.MAX_MESSAGE_BYTES + 1)).code == "too_large"


def test_size_limit_counts_utf8_bytes_of_text_too():
    """The limit is in UTF-8 bytes also for decoded text: 30 000 Chinese characters are
    90 000 bytes, too large, though fewer than MAX_MESSAGE_BYTES characters."""
    raw = message(type="chat", text="长" * 30_000)
    assert len(raw) < protocol.MAX_MESSAGE_BYTES < len(raw.encode())
    assert refused(raw).code == "too_large"


def test_message_of_exactly_the_limit_is_accepted():
    """A message of exactly MAX_MESSAGE_BYTES bytes is not too large."""
    empty = message(type="ping", pad="")
    raw = message(type="ping", pad="x" * (protocol.MAX_MESSAGE_BYTES - len(empty)))
    assert len(raw.encode()) == protocol.MAX_MESSAGE_BYTES
    assert protocol.parse(raw) == protocol.Ping()


@pytest.mark.parametrize(
    "raw",
    ["{not json", "", "   ", '{"v": 1, "type": "ping"', "{'v': 1, 'type': 'ping'}", b"\xff\xfe"],
)
def test_not_json_is_refused(raw):
    """Text that is not JSON is refused as bad_json."""
    assert refused(raw).code == "bad_json"


def test_invalid_utf8_is_refused():
    """Bytes that are not UTF-8 are refused as bad_json, not raised as a decode error."""
    assert refused(b'{"v": 1, "type": "chat", "text": "\xff"}').code == "bad_json"


def test_deep_nesting_is_refused_not_raised():
    """JSON nested deeper than the parser can recurse, yet under the size limit, is
    refused as bad_json instead of escaping as a RecursionError."""
    raw = '{"v": 1, "type": "ping", "x": ' + "[" * 20_000 + "]" * 20_000 + "}"
    assert len(raw) < protocol.MAX_MESSAGE_BYTES
    assert refused(raw).code == "bad_json"


@pytest.mark.parametrize("raw", ["[]", "1", '"ping"', "null", "true", '[{"v": 1, "type": "ping"}]'])
def test_json_that_is_not_an_object_is_refused(raw):
    """Valid JSON other than an object is refused as bad_json."""
    assert refused(raw).code == "bad_json"


@pytest.mark.parametrize(
    "version", [None, 0, 2, "1", 1.0, True, [1], {"major": 1}], ids=lambda v: repr(v)
)
def test_wrong_version_is_refused(version):
    """Only the integer 1 is version 1: not 2, not "1", not 1.0, not true."""
    assert refused(json.dumps({"v": version, "type": "ping"})).code == "bad_version"


def test_missing_version_is_refused():
    """A message without "v" is refused as bad_version."""
    assert refused('{"type": "ping"}').code == "bad_version"


def test_version_is_checked_before_type():
    """A message of another version is refused for its version, whatever its type."""
    assert refused('{"v": 2, "type": "dance"}').code == "bad_version"


@pytest.mark.parametrize(
    "kind",
    ["dance", "", "Ping", None, 5, ["join"], "pong", "joined", "answer", "error", "queue"],
    ids=lambda k: repr(k),
)
def test_unknown_type_is_refused(kind):
    """A type that is not a client message — unknown, missing, not a string, or one only
    the server sends — is refused as unknown_type."""
    assert refused(message(type=kind)).code == "unknown_type"


def test_missing_type_is_refused():
    """A message without "type" is refused as unknown_type."""
    assert refused('{"v": 1}').code == "unknown_type"


def test_unknown_type_detail_is_cut_short():
    """The detail of unknown_type names the type, cut to 32 characters."""
    assert refused(message(type="x" * 100)).detail == "x" * 32


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"type": "join"}, "token"),
        ({"type": "join", "token": 5}, "token"),
        ({"type": "join", "token": ""}, "token"),
        ({"type": "join", "token": " \t\n"}, "token"),
        ({"type": "join", "token": None}, "token"),
        ({"type": "offer", "publish": {}}, "sdp"),
        ({"type": "offer", "sdp": 5, "publish": {}}, "sdp"),
        ({"type": "offer", "sdp": "", "publish": {}}, "sdp"),
        ({"type": "offer", "sdp": ["v=0"], "publish": {}}, "sdp"),
        ({"type": "offer", "sdp": "v=0"}, "publish"),
        ({"type": "offer", "sdp": "v=0", "publish": None}, "publish"),
        ({"type": "offer", "sdp": "v=0", "publish": ["face"]}, "publish"),
        ({"type": "offer", "sdp": "v=0", "publish": "face"}, "publish"),
        ({"type": "chat"}, "text"),
        ({"type": "chat", "text": 5}, "text"),
        ({"type": "chat", "text": "   \n"}, "text"),
        ({"type": "chat", "text": ["你好"]}, "text"),
        ({"type": "media_state", "face": True, "document": True}, "audio"),
        ({"type": "media_state", "audio": 1, "face": True, "document": True}, "audio"),
        ({"type": "media_state", "audio": True, "face": "true", "document": True}, "face"),
        ({"type": "media_state", "audio": True, "face": True, "document": None}, "document"),
        ({"type": "media_state", "audio": True, "face": True, "document": 0}, "document"),
        ({"type": "still_request", "material": True}, "material"),
        ({"type": "still_request", "material": 1.0}, "material"),
        ({"type": "still_request", "material": "12"}, "material"),
        ({"type": "still_request", "material": 0}, "material"),
        ({"type": "still_request", "material": 2**31}, "material"),
    ],
    ids=lambda x: json.dumps(x, ensure_ascii=False) if isinstance(x, dict) else x,
)
def test_missing_or_ill_typed_field_is_refused(body, field):
    """A required field that is missing, of the wrong type or blank is refused as
    bad_field, naming the field."""
    error = refused(message(**body))
    assert (error.code, error.detail) == ("bad_field", field)


def test_too_long_chat_is_refused():
    """A chat text over MAX_CHAT_CHARS characters is refused as too_long."""
    error = refused(message(type="chat", text="长" * (protocol.MAX_CHAT_CHARS + 1)))
    assert (error.code, error.detail) == ("too_long", "text")


def test_chat_length_counts_surrounding_blanks():
    """The chat limit applies to the text as sent, before blanks are trimmed."""
    text = "好" * (protocol.MAX_CHAT_CHARS - 5) + " " * 10
    assert refused(message(type="chat", text=text)).code == "too_long"


def test_too_long_token_is_refused():
    """A join token over 4096 characters is refused as too_long."""
    error = refused(message(type="join", token="t" * 4097))
    assert (error.code, error.detail) == ("too_long", "token")
    assert protocol.parse(message(type="join", token="t" * 4096)) == protocol.Join("t" * 4096)


@pytest.mark.parametrize(
    "publish",
    [
        {"0": "screen"},
        {"0": "Face"},
        {"0": ""},
        {"0": "face", "1": "video"},
    ],
    ids=lambda p: json.dumps(p),
)
def test_publish_map_with_unknown_source_is_refused(publish):
    """A publish map naming a source other than face, document, audio is refused."""
    error = refused(message(type="offer", sdp="v=0", publish=publish))
    assert (error.code, error.detail) == ("bad_field", "publish")


def test_publish_map_with_duplicate_source_is_refused():
    """Two mids publishing the same source are refused."""
    error = refused(message(type="offer", sdp="v=0", publish={"0": "face", "1": "face"}))
    assert (error.code, error.detail) == ("bad_field", "publish")


def test_publish_map_with_too_many_entries_is_refused():
    """A publish map with more entries than there are sources is refused."""
    publish = {"0": "face", "1": "document", "2": "audio", "3": "face"}
    error = refused(message(type="offer", sdp="v=0", publish=publish))
    assert (error.code, error.detail) == ("bad_field", "publish")


@pytest.mark.parametrize(
    "source", [1, None, True, ["face"], {"source": "face"}], ids=lambda s: repr(s)
)
def test_publish_map_with_non_string_source_is_refused(source):
    """A publish map whose value for a mid is not a source string is refused."""
    error = refused(message(type="offer", sdp="v=0", publish={"0": source}))
    assert (error.code, error.detail) == ("bad_field", "publish")


def test_publish_map_with_too_long_mid_is_refused():
    """A mid longer than 16 characters is refused."""
    error = refused(message(type="offer", sdp="v=0", publish={"m" * 17: "face"}))
    assert (error.code, error.detail) == ("bad_field", "publish")


def test_publish_map_with_non_string_mid_is_not_json():
    """A mid cannot be anything but a string: an unquoted key is not JSON at all."""
    assert refused('{"v": 1, "type": "offer", "sdp": "v=0", "publish": {0: "face"}}').code == (
        "bad_json"
    )


async def test_join_tokens_expire_and_name_their_session_and_user():
    """A join token is refused once expired, for another session, for another user,
    or when presented a second time."""

    class Past:
        def now(self) -> dt.datetime:
            return dt.datetime.now(dt.UTC) - dt.timedelta(minutes=10)

    grant = Grant("s1", 7, "chuangkou", "clerk", ("face",), False)
    expired = JoinTokens(b"k" * 32, Past(), InProcessBus()).issue(grant)
    tokens = JoinTokens(b"k" * 32, SystemClock(), InProcessBus())
    for token, session, user, code in [
        (expired, "s1", 7, "token_expired"),
        (tokens.issue(grant), "s2", 7, "token_invalid"),
        (tokens.issue(grant), "s1", 8, "token_invalid"),
        (tokens.issue(grant) + "x", "s1", 7, "token_invalid"),
    ]:
        with pytest.raises(NotAuthenticated) as refused:
            await tokens.verify(token, session, user)
        assert refused.value.code == code
    token = tokens.issue(grant)
    assert await tokens.verify(token, "s1", 7) == grant
    with pytest.raises(NotAuthenticated) as reused:
        await tokens.verify(token, "s1", 7)
    assert reused.value.code == "token_used"


async def test_join_tokens_follow_the_injected_clock():
    """Issued and checked against the same (injected) clock: a token stays valid while
    that clock says so, and expires when it moves past the lifetime, whatever the wall
    time."""

    class Moved:
        def __init__(self) -> None:
            self.at = dt.datetime.now(dt.UTC) - dt.timedelta(days=3)

        def now(self) -> dt.datetime:
            return self.at

    clock = Moved()
    tokens = JoinTokens(b"k" * 32, clock, InProcessBus(), seconds=120)
    grant = Grant("s1", 7, "chuangkou", "clerk", ("face",), False)
    assert await tokens.verify(tokens.issue(grant), "s1", 7) == grant
    stale = tokens.issue(grant)
    clock.at += dt.timedelta(seconds=121)
    with pytest.raises(NotAuthenticated) as expired:
        await tokens.verify(stale, "s1", 7)
    assert expired.value.code == "token_expired"
