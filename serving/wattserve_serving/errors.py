"""OpenAI-style error bodies: {"error": {"message", "type", "param", "code"}}."""

from __future__ import annotations

from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError
from starlette.responses import JSONResponse

INVALID_REQUEST = "invalid_request_error"
M = TypeVar("M", bound=BaseModel)


class APIError(Exception):
    """An error the API returns to the client as OpenAI-style JSON."""

    def __init__(
        self,
        status: int,
        message: str,
        *,
        param: str | None = None,
        code: str | None = None,
        type_: str = INVALID_REQUEST,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.param = param
        self.code = code
        self.type = type_
        self.headers = headers or {}

    def body(self) -> dict[str, Any]:
        return {
            "error": {
                "message": self.message,
                "type": self.type,
                "param": self.param,
                "code": self.code,
            }
        }

    def response(self) -> JSONResponse:
        return JSONResponse(self.body(), status_code=self.status, headers=self.headers)


def from_validation_error(exc: ValidationError, tags: frozenset[str] = frozenset()
                          ) -> APIError:
    """400 naming the first offending field (dotted path, e.g. `messages.0.role`).

    400 `invalid_request_error`, as OpenAI and vLLM answer (FastAPI's default is 422).
    ``tags``: the names of a discriminated union's members, which pydantic puts in the
    location; with them given, an error under a union's string member comes last (a list
    that failed is named by what failed in it, not by not being a string).
    """
    errors = exc.errors(include_url=False)
    err = errors[0]
    if tags:
        err = next((e for e in errors if "str" not in e.get("loc", ())), err)
    loc = [str(p) for p in err.get("loc", ()) if not _is_union_tag(p) and p not in tags]
    param = ".".join(loc) if loc else None
    kind = str(err.get("type", "invalid"))
    msg = str(err.get("msg", "invalid value")).removeprefix("Value error, ")
    if kind == "missing":
        message = f"'{param}' is a required property"
    else:
        message = f"Invalid value for '{param}': {msg}"
    return APIError(400, message, param=param, code=kind)


def _is_union_tag(part: object) -> bool:
    # pydantic puts union member names ("str", "list[TextPart]") into error locations.
    return isinstance(part, str) and (part in {"str", "int", "float", "bool"} or "[" in part)


def validate(model: type[M], body: dict[str, Any], tags: frozenset[str] = frozenset()) -> M:
    """``body`` as ``model``, or the 400 naming its first offending field (``tags``: the
    names of a discriminated union's members, which pydantic puts in the location)."""
    try:
        return model.model_validate(body)
    except ValidationError as exc:
        raise from_validation_error(exc, tags) from exc


def unavailable(message: str) -> APIError:
    """503: the model is not loaded (yet, or it failed to); retryable, as a replica still
    loading is ready within seconds (the 429s say when to retry too)."""
    return APIError(
        503, f"Model not loaded: {message}", code="model_not_loaded", type_="service_unavailable",
        headers={"Retry-After": "2"},
    )


def shutting_down() -> APIError:
    """503 while the replica drains (SIGTERM): retryable, another replica answers."""
    return APIError(
        503, "The server is shutting down; retry the request (another replica answers it).",
        code="shutting_down", type_="service_unavailable", headers={"Retry-After": "1"},
    )
