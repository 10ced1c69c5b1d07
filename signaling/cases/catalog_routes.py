"""The catalogue over the JSON API (see docs/api.md): the matters, and the admin's import."""

from __future__ import annotations

from aiohttp import web

from signaling.web.access import ALL_ROLES, USER, allow
from signaling.web.appkeys import CATALOG
from signaling.web.json_api import json_response, read_json
from signaling.web.presenters import Lookup

routes = web.RouteTableDef()


@routes.get("/api/v1/matters")
@allow(*ALL_ROLES, scope="whole catalogue")
async def list_matters(request: web.Request) -> web.Response:
    lookup = await Lookup.load(request.app)
    catalog = lookup.catalog
    matters = catalog.matters if request[USER].role == "admin" else catalog.active_matters()
    return json_response({"matters": [lookup.matter(m) for m in matters]})


@routes.post("/api/v1/catalog")
@allow("admin", scope="whole catalogue")
async def import_catalog(request: web.Request) -> web.Response:
    counts = await request.app[CATALOG].import_catalog(
        await read_json(request), actor=request[USER].username
    )
    return json_response({"imported": counts})
