"""strangler_sdk.fields and document reading: declared fields by shared name and rule,
writes that break the profile's types refused, ``user`` and ``extra`` kept exactly."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from adapters.document import Document, Principal, SessionFormatError
from strangler_sdk.config import ConfigError, SdkSettings, load_profile
from strangler_sdk.fields import FieldError, SessionData, readable

ROOT = Path(__file__).resolve().parents[2]
TRIPS = load_profile(ROOT / "examples" / "django_trips" / "config.yaml")
ANN = Principal("7d0c7a7e-0000-4000-8000-000000000001", "Ann Lee", {"username": "ann"})
EXTRA = {"_auth_user_hash": "abc", "created": 1.0, "big": 2**64 + 1, "z": {"b": 1, "a": 2}}


def data(**fields: Any) -> SessionData:
    return SessionData(Document(ANN, fields, EXTRA), TRIPS)


def test_absent_fields_read_as_their_rules_empty_value() -> None:
    s = data()
    assert (s.get("prefs"), s.get("saved"), s.get("views"), s.get("wizard")) == ({}, [], {}, {})
    assert s.get("recent") is None and s.get("draft") is None


def test_counter_counts_and_a_key_at_zero_goes() -> None:
    s = data(views={"rome": 2}).count("views", "oslo", 1).count("views", "rome", -2)
    assert s.get("views") == {"oslo": 1}


def test_set_stays_sorted_and_unique() -> None:
    s = data(saved=["rome"]).add("saved", "oslo").add("saved", "rome").add("saved", "lima")
    assert s.get("saved") == ["lima", "oslo", "rome"]
    assert s.discard("saved", "oslo").get("saved") == ["lima", "rome"]


def test_map_entries_and_whole_values() -> None:
    s = data().put("prefs", "lang", "en").put("wizard", "where", {"destination": "rome"})
    assert s.pop("prefs", "lang").get("prefs") == {}
    assert s.set("draft", None).doc.fields["draft"] is None, "a nullable field holds null"
    assert s.set("recent", ["rome"]).get("recent") == ["rome"]


@pytest.mark.parametrize("write", [
    lambda s: s.put("prefs", "lang", 5),            # map of strings
    lambda s: s.add("saved", 3),                    # set of strings
    lambda s: s.set("recent", "rome"),              # lww array
    lambda s: s.set("draft", 12),                   # lww string, nullable
    lambda s: s.put("wizard", "where", "rome"),     # map of objects
    lambda s: s.set("views", {"rome": 0}),          # counter counts are > 0
    lambda s: s.set("nope", 1),                     # not declared
    lambda s: s.count("saved", "rome", 1),          # not a counter
])
def test_writes_that_break_the_profile_are_refused(write: Any) -> None:
    with pytest.raises(FieldError):
        write(data())


def test_user_and_extra_are_written_back_unchanged() -> None:
    before = data(saved=["rome"])
    after = before.add("saved", "oslo").count("views", "rome", 1).doc
    assert after.user == ANN and after.extra == EXTRA
    text = after.to_json()
    assert '"big":18446744073709551617' in text and '"created":1.0' in text
    assert text.index('"b":1') < text.index('"a":2'), "object keys keep their order"


@pytest.mark.parametrize("doc", [
    '{"schema":2,"user":null,"fields":{"saved":"rome"},"extra":{}}',
    '{"schema":2,"user":null,"fields":{"views":{"rome":"2"}},"extra":{}}',
    '{"schema":2,"user":null,"fields":{"draft":3},"extra":{}}',
    '{"schema":2,"user":{"id":7,"name":"a"},"fields":{},"extra":{}}',  # the id is a string
])
def test_documents_breaking_the_profile_are_unreadable(doc: str) -> None:
    assert not readable(TRIPS, Document.from_json(doc))


@pytest.mark.parametrize("raw", ["not json", '{"schema":1}', '{"schema":2,"fields":[]}',
                                 '{"schema":2,"extra":"x"}', '{"schema":2,"user":"ann"}',
                                 '{"schema":2,"x":NaN}'])
def test_malformed_documents_are_refused(raw: str) -> None:
    with pytest.raises(SessionFormatError):
        Document.from_json(raw)


def test_a_readable_document_is_readable() -> None:
    assert readable(TRIPS, data(saved=["a"], views={"a": 1}, draft=None).doc)


def test_settings_from_the_deployments_config() -> None:
    settings = SdkSettings.from_config(ROOT / "examples" / "django_trips" / "config.yaml",
                                       jwks_url="http://127.0.0.1:1/jwks.json")
    assert settings.key_prefix == "trips" and settings.session_ttl_s == 86400
    assert settings.profile is not None and "wizard" in settings.profile.field_names


def test_a_profile_from_a_dict_and_bad_ones_named() -> None:
    assert load_profile({"cookie": "sid", "duplicate_cookies": "last",
                         "identity": {"user_id": {"path": "/uid"}}}).cookie == "sid"
    with pytest.raises(ConfigError):
        load_profile({"cookie": "sid"})
    with pytest.raises(ConfigError):
        load_profile(ROOT / "no-such-config.yaml")
