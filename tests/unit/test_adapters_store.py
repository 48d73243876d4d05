"""adapters.store: the shared session record's names and write arguments."""

from __future__ import annotations

import secrets

import pytest

from adapters.store import (
    FIELDS,
    SYNC_WRITE,
    WRITE_SCRIPT,
    session_key,
    sync_write_args,
    valid_session_id,
    write_args,
)


def test_write_args_shape() -> None:
    args = write_args(5, 86400, bump=True, set_lv=False,
                      fields={"doc": '{"schema":1}', "lrev": 3, "node": "a"})
    assert args == [5, 86400, "1", "0", "", "doc", '{"schema":1}', "lrev", 3, "node", "a"]


def test_write_args_flags_op_id_and_no_fields() -> None:
    assert write_args(0, 60, bump=False, set_lv=True, fields={}, op="add-1.x:y") == \
        [0, 60, "0", "1", "add-1.x:y"]


@pytest.mark.parametrize("op", ["has space", "a" * 65, "é", "x\n"])
def test_op_ids_are_plain_tokens(op: str) -> None:
    with pytest.raises(ValueError, match="not an op id"):
        write_args(1, 60, bump=True, set_lv=False, fields={}, op=op)


@pytest.mark.parametrize("name", ["v", "bogus", "DOC", "", "t ", "lk", "le", "f", "ops"])
def test_write_args_refuses_fields_it_does_not_own(name: str) -> None:
    with pytest.raises(ValueError, match="not a writable session field"):
        write_args(1, 60, bump=True, set_lv=False, fields={"doc": "{}", name: 1})
    with pytest.raises(ValueError, match="not a writable session field"):
        sync_write_args(7, 1, 60, fields={name: 1})


def test_every_documented_field_but_v_is_writable() -> None:
    fields = {f: "x" for f in FIELDS if f != "v"}
    args = write_args(1, 60, bump=True, set_lv=True, fields=fields)
    assert args[5::2] == list(fields)
    assert set(FIELDS) == {"doc", "v", "lv", "node", "lrev", "base", "t", "pi"}


def test_sync_write_args_shape() -> None:
    assert sync_write_args(9, None, 60, release=True, fields={"lrev": 4}) == \
        [9, "", 60, "0", "0", "1", "0", "lrev", 4]
    assert sync_write_args(9, 3, 60, bump=True, set_lv=True, drop=True) == \
        [9, 3, 60, "1", "1", "0", "1"]


def test_write_scripts_refresh_the_ttl_in_the_same_step() -> None:
    for script in (WRITE_SCRIPT, SYNC_WRITE):
        assert "EXPIRE" in script and "HSET" in script


def test_session_key_is_hash_tagged_on_the_session_id() -> None:
    sid = secrets.token_urlsafe(32)
    key = session_key("strangler", sid)
    assert key == f"strangler:{{{sid}}}"
    # Redis Cluster hashes only what is inside the first {...}: the session id
    assert key[key.index("{") + 1:key.index("}")] == sid


@pytest.mark.parametrize("sid", [secrets.token_urlsafe(32), "a" * 16, "Z" * 128,
                                 "abc-DEF_123-xyz_0", secrets.token_urlsafe(16)])
def test_valid_session_ids(sid: str) -> None:
    assert valid_session_id(sid)


@pytest.mark.parametrize(
    "sid",
    [
        "",
        "a" * 15,
        "a" * 129,
        "abcdefghijklmnop{",
        "abcdefgh}ijklmnop",
        "{abcdefghijklmnop}",
        "abcdefgh:ijklmnop",
        "abcdefgh ijklmnop",
        "abcdefghijklmnop\n",
        "abcdefgh*ijklmnop",
        "abcdefgh/ijklmnop",
        "abcdefgh.ijklmnop",
        "abcdefgh=ijklmnop",
        "abcdéfghijklmnopq",
        "abcdefghijklmnop\x00",
    ],
)
def test_invalid_session_ids_never_become_keys(sid: str) -> None:
    assert not valid_session_id(sid)
