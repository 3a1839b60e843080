"""The OpenAPI 3.1 document of the registered routes and streams (``GET /openapi.json``)."""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from meterd.api.server import RouteSpec
    from meterd.api.streams import Stream

_ERROR = {"description": "refused: {\"error\": reason}",
          "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}}
_OBJECT = {"content": {"application/json": {"schema": {"type": "object"}}}}


def _operation_id(method: str, path: str) -> str:
    return method.lower() + "_" + (re.sub(r"[^A-Za-z0-9]+", "_", path).strip("_") or "root")


def openapi_document(title: str, version: str, routes: Sequence[RouteSpec], streams: Sequence[Stream],
                     *, metrics: bool) -> dict[str, Any]:
    """The document: one operation per route (summary, the body's JSON Schema, the role it
    needs on TCP as ``x-role``), one GET per WebSocket stream, ``/metrics`` when served."""
    paths: dict[str, dict[str, Any]] = {}
    for spec in sorted(routes, key=lambda s: (s.path, s.method)):
        op: dict[str, Any] = {
            "operationId": _operation_id(spec.method, spec.path),
            "summary": spec.description or f"{spec.method} {spec.path}",
            "x-role": spec.role.value,
            "responses": {"200": {"description": "done", **_OBJECT}, "400": _ERROR, "401": _ERROR, "403": _ERROR},
        }
        if spec.local_only:
            op["x-local-only"] = True
            op["description"] = "Served on the UNIX socket only."
        if spec.body is not None:
            op["requestBody"] = {"required": False,
                                 "content": {"application/json": {"schema": spec.body.json_schema()}}}
        paths.setdefault(spec.path, {})[spec.method.lower()] = op
    for stream in sorted(streams, key=lambda s: s.name):
        paths[f"/ws/{stream.name}"] = {"get": {
            "operationId": f"stream_{stream.name}",
            "summary": stream.description,
            "description": ("WebSocket. First message {\"stream\", \"hello\"}; then {\"stream\", \"seq\", "
                            "\"data\"} per publication, and {\"stream\", \"dropped\": n} when this client "
                            "fell behind and lost its oldest messages."),
            "x-role": "read",
            "responses": {"101": {"description": "switching to the WebSocket protocol"}, "401": _ERROR},
        }}
    if metrics:
        paths["/metrics"] = {"get": {
            "operationId": "get_metrics", "summary": "Prometheus metrics: the meter's health and measurements.",
            "x-role": "read",
            "responses": {"200": {"description": "Prometheus text exposition format",
                                  "content": {"text/plain": {"schema": {"type": "string"}}}}, "401": _ERROR}}}
    return {
        "openapi": "3.1.0",
        "info": {"title": title, "version": version,
                 "description": "The meter's API. On TCP every request needs a token (read: GET and "
                                "streams; control: everything); the UNIX socket needs none."},
        "paths": paths,
        "components": {
            "schemas": {"Error": {"type": "object", "required": ["error"],
                                  "properties": {"error": {"type": "string"}}}},
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"},
                                "query": {"type": "apiKey", "in": "query", "name": "access_token"}},
        },
        "security": [{"bearer": []}, {"query": []}],
    }
