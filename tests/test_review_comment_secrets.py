"""A secret inside a list or a longer string is never shown in the review comment, not even its digest
(`plan` masks a secret as `[secret:<digest>]`, infra/plan.py `mask`; a short value's digest can be guessed)."""

from __future__ import annotations

from infra.review.comment import PropertyChange


def test_a_secret_digest_inside_a_list_is_masked() -> None:
    change = PropertyChange("args", ["--x", "[secret:deadbeef]"], ["--x", "[secret:cafebabe]", "--y"])
    text = change.render(1000)
    assert "deadbeef" not in text and "cafebabe" not in text
    assert "(secret)" in text


def test_a_secret_digest_inside_a_string_or_mapping_is_masked() -> None:
    change = PropertyChange("env", {"A": "token=[secret:0123abcd]"}, {"A": "token=[secret]", "B": "plain"})
    text = change.render(1000)
    assert "0123abcd" not in text and "[secret" not in text
    assert "plain" in text
