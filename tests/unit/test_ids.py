"""Row and event ids: ``schema.once_id`` writes out uuid5 by hand, so it must equal it."""

from __future__ import annotations

import uuid

from hypothesis import given
from hypothesis import strategies as st

from progress.schema import _NAMESPACE, once_id, stable_id


@given(st.lists(st.text(), max_size=5))
def test_ids_are_the_uuid5_of_their_parts(parts: list[str]) -> None:
    expected = str(uuid.uuid5(_NAMESPACE, "\x1f".join(parts)))
    assert once_id(*parts) == expected
    assert stable_id(*parts) == expected


def test_an_id_given_before_uuid5_was_written_out_is_unchanged() -> None:
    # Ids are stored keys: the id this service gave a row before stays the id it gives.
    assert once_id("user_progress", "u1") == "847bce14-729b-594f-a26a-5d974a28f476"
