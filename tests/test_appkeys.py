"""Every field of Services has its app key, typed as the field is (the app factory puts
the fields under their keys by a loop, so nothing else pairs them)."""

from __future__ import annotations

import dataclasses

from aiohttp import web

from signaling.node.services import Services
from signaling.web import appkeys


def test_each_services_field_has_one_key_of_its_type() -> None:
    fields = {field.name: field.type for field in dataclasses.fields(Services)}
    assert set(appkeys.SERVICE_KEYS) == set(fields)
    constants = {v: name for name, v in vars(appkeys).items() if isinstance(v, web.AppKey)}
    for field, key in appkeys.SERVICE_KEYS.items():
        annotation = appkeys.__annotations__[constants[key]]
        assert annotation == f"web.AppKey[{fields[field]}]", field
