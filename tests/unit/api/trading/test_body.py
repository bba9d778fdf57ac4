import pytest

from hft.api.errors import ApiError
from hft.api.trading.body import (
    MAX_BODY_BYTES,
    JsonNumber,
    check_fields,
    int_field,
    parse_json_object,
)


def test_numbers_keep_their_exact_text():
    body = parse_json_object(b'{"price": 190.10, "quantity": 3, "x": "1.5"}')
    assert body["price"] == "190.10"
    assert isinstance(body["price"], JsonNumber)
    assert isinstance(body["quantity"], JsonNumber)
    assert not isinstance(body["x"], JsonNumber)


@pytest.mark.parametrize(
    ("raw", "status", "code"),
    [
        (b'{"p": NaN}', 422, "invalid_number"),
        (b'{"p": -Infinity}', 422, "invalid_number"),
        (b"[1]", 422, "invalid_body"),
        (b"{", 400, "malformed_json"),
        (b"", 422, "missing_body"),
        (b"\xff\xfe", 400, "malformed_json"),
        (b"[" * 100_000, 413, "body_too_large"),
        (b'{"a": ' + b"[" * 5000 + b"]" * 5000 + b"}", 400, "malformed_json"),
    ],
)
def test_bad_bodies(raw, status, code):
    if len(raw) <= MAX_BODY_BYTES and status == 413:
        pytest.skip("not large enough")
    with pytest.raises(ApiError) as exc:
        parse_json_object(raw)
    assert (exc.value.status, exc.value.code) == (status, code)


def test_check_fields():
    allowed = {"q": (str, JsonNumber), "flag": (bool,), "name": (str,)}
    check_fields({"q": JsonNumber("1"), "flag": True, "name": "x"}, allowed)
    check_fields({"q": None}, allowed)
    for body, code in [
        ({"zzz": 1}, "unknown_field"),
        ({"flag": "true"}, "invalid_flag"),
        ({"name": JsonNumber("1")}, "invalid_name"),
        ({"q": True}, "invalid_q"),
        ({"q": [1]}, "invalid_q"),
    ]:
        with pytest.raises(ApiError) as exc:
            check_fields(body, allowed)
        assert exc.value.code == code


def test_int_field():
    assert int_field(JsonNumber("12"), "n") == 12
    for bad in ("1.5", "-1", "abc", "9" * 20):
        with pytest.raises(ApiError):
            int_field(JsonNumber(bad), "n")
    with pytest.raises(ApiError):
        int_field(JsonNumber("0"), "n", minimum=1)
