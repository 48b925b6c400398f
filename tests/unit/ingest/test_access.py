import pytest

from services.ingest.access import write_key_in


@pytest.mark.parametrize(
    ("body", "key"),
    [
        (b'{"writeKey": "vk_abc", "batch": []}', "vk_abc"),
        (b'{"writeKey": ""}', None),
        (b'{"writeKey": 7}', None),
        (b'["writeKey"]', None),
        (b'{"writeKey": "vk_abc"', None),
        (b"", None),
    ],
)
def test_the_write_key_is_read_only_from_a_json_object(body: bytes, key: str | None) -> None:
    assert write_key_in(body) == key
