"""The writer's fast canonical JSON (orjson, sorted keys) is byte for byte the definition's."""

from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from app.audit.chain import GENESIS, canonical, chain_rows, link, reference_canonical

# What event data is made of: the service never puts floats in an event (money and rates are
# ints), and jsonb cannot hold NUL characters.
text = st.text(st.characters(exclude_characters="\x00", exclude_categories=["Cs"]))
scalars = st.none() | st.booleans() | st.integers(-(2**63), 2**63 - 1) | text
json_values = st.recursive(
    scalars, lambda inner: st.lists(inner, max_size=5) | st.dictionaries(text, inner, max_size=5),
    max_leaves=30,
)


@given(json_values)
def test_orjson_with_sorted_keys_writes_what_json_dumps_writes(data: Any) -> None:
    event = {"id": "e", "seq": 1, "type": "bid.placed", "created_at": "2026-11-28T12:00:00Z",
             "data": data}
    assert canonical(event) == reference_canonical(event)


def test_rows_are_numbered_after_the_head_and_each_hash_links_the_one_before() -> None:
    from datetime import UTC, datetime

    at = datetime(2026, 11, 28, 12, 0, 0, 250, tzinfo=UTC)
    rows = [("id-1", "listing.opened", None, at, '{"a":1,"b":"ü"}'), ("id-2", "x", None, at, {})]
    chained, seq, head = chain_rows(41, GENESIS, rows)
    assert [r[0] for r in chained] == [42, 43] and seq == 43
    first = reference_canonical({
        "id": "id-1", "seq": 42, "type": "listing.opened",
        "created_at": "2026-11-28T12:00:00.000250Z", "data": {"b": "ü", "a": 1},
    })
    assert chained[0][-1] == link(GENESIS, first)
    assert chained[1][-1] == head and head != chained[0][-1]
    assert chained[0][1:-1] == rows[0]
