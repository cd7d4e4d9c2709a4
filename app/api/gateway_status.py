"""``GET /v1/gateway-status``: the gateway circuit breaker's state (docs/api.md, "Gateway circuit breaker").

A Genesys flow reads it (data action "Get Gateway Status") before offering automated card entry: while the
breaker is ``open`` (or ``half_open``: one probe submission is being let through) card submissions end
``requires_agent`` with ``decline_code: "automation_unavailable"``, so the flow offers the agent route up front.
The state is shared by every instance (Redis); see :mod:`payments.breaker`.
"""

from __future__ import annotations

from typing import Literal

from flask import jsonify
from pydantic import Field
from spectree import Tag

from .. import services
from ..schemas import Timestamp, View
from . import get

TAGS = [Tag(name="operations", description="Health of the payment gateway as paygate sees it.")]


class GatewayStatus(View):
    """The gateway circuit breaker as every instance sees it."""

    gateway: str = Field(description="The configured gateway: `sandbox` or `stripe`.")
    state: Literal["closed", "open", "half_open"] = Field(
        description="`closed`: card submissions go to the gateway. `open`: they end `requires_agent` "
                    "(`automation_unavailable`) without a gateway call. `half_open`: the cooldown passed and the "
                    "next submission is the probe that closes (or reopens) the breaker; others still go to the "
                    "agent.")
    since: Timestamp | None = Field(description="When this state began (business time); null before the first "
                                                "gateway call.")
    recent_latency_ms: int | None = Field(
        description="Average latency of the last PAYGATE_BREAKER_WINDOW gateway calls, in milliseconds; null "
                    "before the first call.")


@get("/gateway-status", operation_id="getGatewayStatus", tags=TAGS,
     ok={200: (GatewayStatus, "The breaker's state.")})
def gateway_status():
    """Get the gateway circuit breaker's state.

    Check it before offering automated payment: with `open` or `half_open`, route the customer to an agent
    (card submissions would end `requires_agent` with `decline_code: "automation_unavailable"`)."""
    return jsonify(services().breaker.status())
