"""docs/protocol.md is the contract for services in any language: what it states must be
what the code does, word for word where a reader would copy it."""

from __future__ import annotations

import re
from pathlib import Path

from adapters.document import EMPTY
from adapters.handles import session_handle
from adapters.store import WRITE_SCRIPT

DOC = (Path(__file__).resolve().parents[2] / "docs" / "protocol.md").read_text()


def test_the_write_script_in_the_doc_is_the_one_that_runs() -> None:
    found = re.search(r"```lua\n(.*?)\n```", DOC, re.S)
    assert found is not None, "protocol.md has no lua block"
    assert found.group(1).strip() == WRITE_SCRIPT.strip()


def test_the_handle_test_vector_is_right() -> None:
    vector = re.search(r"key `(k+)` \(32 times `k`\), session id\n`([^`]+)` -> handle `([^`]+)`",
                       DOC)
    assert vector is not None
    key, sid, handle = vector.groups()
    assert len(key) == 32 and session_handle(key.encode(), sid) == handle


def test_the_empty_document_in_the_doc_is_the_empty_document() -> None:
    assert f"`{EMPTY.to_json()}`" in DOC
