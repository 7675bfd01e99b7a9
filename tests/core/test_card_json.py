"""One card serialisation: strict JSON (no Infinity), inverted exactly, used by the worker protocol."""

from __future__ import annotations

import dataclasses
import json

from tfcaf.sandbox.worker import card_from_dict, card_to_dict
from tfcaf.tasks.card import card_from_json, card_to_json
from tfcaf.tasks.registry import get_card


def test_infinite_bounds_become_strings_and_come_back():
    card = dataclasses.replace(get_card("smac_3m"), reward_range=(float("-inf"), float("inf")))
    data = card_to_json(card)
    text = json.dumps(data, allow_nan=False)  # strict JSON
    assert data["reward_range"] == ["-inf", "inf"] and "Infinity" not in text
    assert card_from_json(json.loads(text)) == card


def test_every_registered_card_round_trips_through_the_worker_protocol():
    from tfcaf.tasks.registry import TASKS

    for name in TASKS:
        card = get_card(name)
        assert card_from_dict(json.loads(json.dumps(card_to_dict(card), allow_nan=False))) == card, name
