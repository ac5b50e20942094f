import pytest

from shared.secrets import check_name, refresh_token_secret_name
from shared.storage import MAX_KEY_CHARS, decode_key, encode_key


@pytest.mark.parametrize("value", ["plain", "a/b\\c#d?e", "100%", "tab\there", "\x7f\x85", "ümlaut@x.com", ""])
def test_keys_escape_forbidden_characters_reversibly(value):
    key = encode_key(value)
    assert not set(key) & set("/\\#?") and all(not (ord(c) < 0x20 or 0x7F <= ord(c) < 0xA0) for c in key)
    assert decode_key(key) == value


def test_long_values_become_a_digest():
    key = encode_key("k" * 1000)
    assert key.startswith("~") and len(key) == 65
    assert encode_key("k" * 1000) == key != encode_key("k" * 999)
    assert len(encode_key("x" * MAX_KEY_CHARS)) == MAX_KEY_CHARS
    with pytest.raises(ValueError, match="hashed"):
        decode_key(key)


def test_refresh_token_names_hold_no_personal_data_and_are_fresh():
    first = refresh_token_secret_name("TenantA", "ada@contoso.com")
    second = refresh_token_secret_name("tenanta", "ADA@contoso.com")
    assert "ada" not in first and "contoso" not in first
    assert first[:35] == second[:35]  # same person: same prefix
    assert first != second  # a new connection: a new name (soft delete keeps old names taken)
    assert check_name(first) == first and len(first) <= 127


@pytest.mark.parametrize("name", ["", "a" * 128, "rt_x", "rt x", "ümlaut"])
def test_invalid_secret_names_are_refused(name):
    with pytest.raises(ValueError, match="Key Vault secret name"):
        check_name(name)
