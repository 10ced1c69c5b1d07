"""Evidence packages over the API (docs/api.md): start an export of a case, follow its
progress, download the package. Auditors and admins, for cases in their scope; a job
is its starter's."""

from __future__ import annotations

from aiohttp import web

from signaling.web.access import USER, allow
from signaling.web.appkeys import CASES, EXPORTS
from signaling.web.json_api import json_response

routes = web.RouteTableDef()
SCOPE = "a case in the auditor's jurisdiction (any for admins); the user's own export jobs"


@routes.post("/api/v1/cases/{case_no}/exports")
@allow("auditor", "admin", scope=SCOPE)
async def start_export(request: web.Request) -> web.Response:
    user = request[USER]
    case = await request.app[CASES].get(user, request.match_info["case_no"])
    job = await request.app[EXPORTS].start(case.case_no, user)
    return json_response({"export": job.to_dict()}, status=202)


@routes.get("/api/v1/cases/{case_no}/exports/{export_id}")
@allow("auditor", "admin", scope=SCOPE)
async def export_progress(request: web.Request) -> web.Response:
    user, case_no = request[USER], request.match_info["case_no"]
    job = request.app[EXPORTS].get(request.match_info["export_id"], case_no, user)
    return json_response({"export": job.to_dict()})


@routes.get("/api/v1/cases/{case_no}/exports/{export_id}/package")
@allow("auditor", "admin", scope=SCOPE)
async def export_package(request: web.Request) -> web.StreamResponse:
    user, case_no = request[USER], request.match_info["case_no"]
    jobs = request.app[EXPORTS]
    job = jobs.get(request.match_info["export_id"], case_no, user)
    with jobs.downloading(job) as path:
        response = web.FileResponse(path)
        response.content_type = "application/zip"
        response.headers["Content-Disposition"] = f'attachment; filename="{case_no}-evidence.zip"'
        await response.prepare(request)  # sent whole here, while the file is kept
    return response
