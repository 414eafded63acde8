"""Stored JSON is decoded with orjson (`server.db.sql.json_value`), which refuses the NaN and
Infinity that Python's json writes and SQLite keeps as text; those rows must still read."""

import math

from server.db.sql import json_value
from server.domain.analytics_rollup import Histogram


def test_standard_json_decodes_as_json_would() -> None:
    assert json_value('{"a": [1, 2.5, "x", null, true]}') == {"a": [1, 2.5, "x", None, True]}


def test_nan_and_infinity_written_by_python_still_decode() -> None:
    value = json_value('{"ratio": NaN, "limit": Infinity}')
    assert math.isnan(value["ratio"])
    assert value["limit"] == math.inf


def test_stored_histograms_merge_by_bucket() -> None:
    merged = Histogram()
    merged.add_stored(['{"3": [2, 40], "5": [1, 150]}', None, '{"3": [1, 21]}'])
    assert merged.buckets == {3: [3, 61], 5: [1, 150]}
