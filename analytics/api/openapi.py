"""The analysts' API's OpenAPI document (``GET /openapi.json``), made from its routes and their
parameter models (analytics.api.service, analytics.api.params), so it cannot drift from them."""

from __future__ import annotations

from typing import Any

from analytics.api.params import Limits
from analytics.api.service import ENDPOINTS, Endpoint

VERSION = "1"
PROBLEM = {"$ref": "#/components/schemas/Problem"}
_ERRORS = {
    "400": "a parameter is missing, unknown (a user id included) or out of range: `invalid_parameter`, `unknown_parameter`",
    "401": "no token, or not one of an enabled account: `missing_token`, `invalid_token`",
    "403": "the token's role may not call this endpoint (`wrong_role`), or the release would exceed the caller's or"
    " the overall budget (`privacy_budget_exhausted`, with `budget_left` and `scope`): nothing computed or recorded",
    "429": "the client sent more than ANALYSTS_API_REQUESTS_PER_CLIENT_PER_MINUTE: `rate_limited`, with Retry-After",
    "503": "the database does not answer: `database_unavailable`, with Retry-After",
}


def document(limits: Limits) -> dict[str, Any]:
    """The OpenAPI 3.1 document of the API."""
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "Analysts' API",
            "version": VERSION,
            "description": "Figures about people released with differential privacy, each with its 95 % interval and"
            f" the budget left; epsilon per release in (0, {limits.max_epsilon:g}], at most {limits.max_days} days."
            " No endpoint takes or returns a user id.",
        },
        "security": [{"bearer": []}],
        "paths": {endpoint.path: {"get": _operation(endpoint)} for endpoint in ENDPOINTS},
        "components": {
            "securitySchemes": {
                "bearer": {"type": "http", "scheme": "bearer", "description": "python -m analytics.accounts create NAME"}
            },
            "schemas": {
                "Problem": {
                    "type": "object",
                    "required": ["error", "detail"],
                    "properties": {
                        "error": {"type": "string", "description": "a stable code to branch on"},
                        "detail": {"type": "string", "description": "what to do"},
                    },
                }
            },
        },
    }


def _operation(endpoint: Endpoint) -> dict[str, Any]:
    schema = endpoint.query.model_json_schema(by_alias=True)
    required = set(schema.get("required", []))
    parameters = [
        {
            "name": name,
            "in": "query",
            "required": name in required,
            "description": prop.pop("description", ""),
            "schema": prop,
            **({"explode": True} if prop.get("type") == "array" else {}),
        }
        for name, prop in schema.get("properties", {}).items()
    ]
    answer = (
        "the reading, as JSON"
        if endpoint.role.value == "dpo"
        else "the release: `cells` (public keys and figures, each `value`, `low`, `high`, `half_width`: the 95 %"
        " interval), `declaration` (unit, bounds, mechanism, scales, epsilon), `epsilon`, `budget_left`, `ledger_id`"
    )
    responses: dict[str, Any] = {"200": {"description": answer}}
    for status, description in _ERRORS.items():
        responses[status] = {"description": description, "content": {"application/json": {"schema": PROBLEM}}}
    return {
        "summary": endpoint.summary,
        "description": f"For the {endpoint.role.value} role. {endpoint.query.__doc__ or ''}".strip(),
        "operationId": endpoint.path.removeprefix("/v1/").replace("/", "_").replace("-", "_"),
        "parameters": parameters,
        "responses": responses,
    }
