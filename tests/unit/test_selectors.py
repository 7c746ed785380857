"""Output-mapping selectors (spec section 2, ``output_mapping``)."""

from __future__ import annotations

import pytest

from podium.domain.selectors import (
    SelectorError,
    apply_output_mapping,
    parse_selector,
    select,
    validate_selector,
)

RESULT = {
    "artifacts": [{"text": "first"}, {"text": "second"}],
    "output": {"items": [1, 2, 3], "odd key": True},
    "status": "ok",
}


def test_dollar_alone_selects_the_whole_document() -> None:
    assert select(RESULT, "$") is RESULT


def test_dotted_keys_and_indexes_navigate_the_document() -> None:
    assert select(RESULT, "$.artifacts[0].text") == "first"
    assert select(RESULT, "$.output") == RESULT["output"]
    assert select(RESULT, "$.output.items[2]") == 3


def test_negative_index_counts_from_the_end() -> None:
    assert select(RESULT, "$.artifacts[-1].text") == "second"


def test_bracket_quoted_keys_select_keys_that_are_not_plain_words() -> None:
    assert select(RESULT, "$.output['odd key']") is True
    assert select(RESULT, '$["status"]') == "ok"


def test_missing_key_raises_selector_error_naming_selector_and_part() -> None:
    with pytest.raises(SelectorError) as caught:
        select(RESULT, "$.artifacts[0].html")
    message = str(caught.value)
    assert "$.artifacts[0].html" in message
    assert "key 'html' missing at $.artifacts[0]" in message


def test_selector_error_is_both_a_key_error_and_a_value_error() -> None:
    with pytest.raises(KeyError):
        select(RESULT, "$.nope")
    with pytest.raises(ValueError, match="nope"):
        select(RESULT, "$.nope")


def test_index_out_of_range_raises_with_length() -> None:
    with pytest.raises(
        SelectorError, match=r"index \[5\] out of range at \$.artifacts \(length 2\)"
    ):
        select(RESULT, "$.artifacts[5]")


def test_key_on_a_list_or_index_on_an_object_raises() -> None:
    with pytest.raises(SelectorError, match="cannot take key 'text' of a list at"):
        select(RESULT, "$.artifacts.text")
    with pytest.raises(SelectorError, match=r"cannot take index \[0\] of an object"):
        select(RESULT, "$.output[0]")


def test_malformed_selector_raises_selector_error_on_select() -> None:
    with pytest.raises(SelectorError, match="must start with"):
        select(RESULT, "artifacts")


@pytest.mark.parametrize(
    "selector", ["$", "$.a", "$.a[0]", "$.a[-1].b", "$['a b']", "$.user-id", " $.a "]
)
def test_valid_selectors_have_no_error(selector: str) -> None:
    assert validate_selector(selector) is None


@pytest.mark.parametrize(
    ("selector", "fragment"),
    [
        ("artifacts[0]", "must start with '$'"),
        ("$.", "expected a key after '.'"),
        ("$[", "expected an integer index"),
        ("$[abc]", "expected an integer index"),
        ("$..a", "expected a key after '.'"),
        ("$[*]", "expected an integer index"),
        ("$[0", "expected ']'"),
        ("$['a]", "unterminated quoted key"),
        ("$a", "unexpected 'a'"),
    ],
)
def test_malformed_selectors_are_described(selector: str, fragment: str) -> None:
    message = validate_selector(selector)
    assert message is not None
    assert fragment in message


def test_parse_selector_returns_segments() -> None:
    assert parse_selector("$.a[0]['b c'][-2]") == ("a", 0, "b c", -2)


def test_without_mapping_the_output_is_the_result_itself() -> None:
    assert apply_output_mapping(RESULT, None) is RESULT


def test_mapping_builds_an_object_of_selected_values() -> None:
    mapping = {"findings": "$.artifacts[0].text", "items": "$.output.items"}
    assert apply_output_mapping(RESULT, mapping) == {"findings": "first", "items": [1, 2, 3]}


def test_mapping_with_a_missing_path_raises() -> None:
    with pytest.raises(SelectorError, match=r"index \[0\] out of range at \$\.artifacts"):
        apply_output_mapping({"artifacts": []}, {"findings": "$.artifacts[0].text"})
