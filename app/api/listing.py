"""The query parameters every list shares and the answer they make (docs/api.md, "Lists").

``limit`` 1–100 (default 20), ``starting_after`` (the last id of the previous page), ``created_after`` /
``created_before`` (RFC 3339, exclusive). A list module subclasses :class:`ListParams` with its filters and
answers with :func:`list_answer`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated

from flask import g, jsonify
from pydantic import Field, create_model

from payments.listing import DEFAULT_LIMIT, FILTERS, MAX_LIMIT, ListQuery, list_objects

from .. import services
from ..schemas import ErrorCode, Params, RequestDatetime, View

_PAGING = {"limit", "starting_after", "created_after", "created_before"}


class ListParams(Params):
    """Paging and the created range of every list."""

    limit: Annotated[int, Field(strict=False, ge=1, le=MAX_LIMIT), ErrorCode("out_of_range")] = Field(
        DEFAULT_LIMIT, description=f"1 to {MAX_LIMIT} objects per page.")
    starting_after: Annotated[str, Field(min_length=1, max_length=40)] | None = Field(
        None, description="The id of the last object of the previous page.")
    created_after: RequestDatetime | None = Field(
        None, description="Only objects created after this moment (RFC 3339).")
    created_before: RequestDatetime | None = Field(
        None, description="Only objects created before this moment (RFC 3339).")


def page_of(view: type[View], name: str, noun: str) -> type[View]:
    """The response model of a list of ``view`` objects: ``{"data": [view, ...], "has_more": bool}``, named
    ``name`` in the document (``PaymentList``) and described as a page of ``noun``, newest first."""
    model = create_model(name, __base__=View, __module__=view.__module__,
                         data=(list[view], ...), has_more=(bool, ...))
    model.__doc__ = f"A page of {noun}, newest first."
    return model


def list_answer(model: type, view: Callable, query: ListParams):
    """``{"data": [view(row), ...], "has_more"}`` for the calling client's ``model`` rows matching ``query``."""
    values = query.model_dump()
    filters = {name: values[name] for name in FILTERS[model] if values.get(name) is not None}
    rows, has_more = list_objects(services().Session, model, g.client_id, ListQuery(
        filters=filters, created_after=query.created_after, created_before=query.created_before,
        limit=query.limit, starting_after=query.starting_after))
    return jsonify({"data": [view(r) for r in rows], "has_more": has_more})
