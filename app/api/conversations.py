"""Conversations: ``POST /v1/conversations/{conversation_id}/close`` — the link ends with the conversation
(docs/api.md, "Contact-center rules").

A Genesys Process Automation trigger on conversation end (or after-call work) starts a workflow whose data
action calls this, so a link texted during a call cannot be paid after the customer hung up
(https://developer.genesys.cloud/platform/process-automation/).
"""

from __future__ import annotations

from flask import g, jsonify
from pydantic import Field
from spectree import Tag

from .. import services
from ..schemas import PATH_PARAMETERS, View
from . import post

TAGS = [Tag(name="conversations", description="What happens to a Genesys conversation's payment links.")]
PATH_PARAMETERS.setdefault("conversation_id", "The Genesys conversation id the sessions were created with.")


class ConversationClosed(View):
    """The sessions of the conversation (this API client's only), oldest first."""

    canceled: list[str] = Field(description="Pending sessions canceled now (cancel_reason conversation_ended).")
    processing: list[str] = Field(description="Sessions left to finish; a decline then ends them canceled.")


@post("/conversations/<conversation_id>/close", operation_id="closeConversation", tags=TAGS,
      ok={200: (ConversationClosed, "Done (also when the conversation had no open session).")})
def close_conversation(conversation_id: str):
    """Close a conversation's payment links.

    Cancels every pending session of the conversation (payment_session.canceled, cancel_reason
    conversation_ended) and leaves the processing ones to finish. Safe to repeat."""
    return jsonify(services().sessions.close_conversation(g.client_id, conversation_id))
