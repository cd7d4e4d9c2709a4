"""The Architect recipes of integrations/genesys/recipes/ (docs/architect-recipes.md), checked as files.

Every flow file parses as YAML (PyYAML's safe_load, the strictest common reader: YAML 1.1 booleans
included), is an Archy-style flow with exactly one flow type at the top, and only calls shipped data
action exports the way their contracts allow: known inputs, every required input, declared outputs, secure
actions only through Call Secure Data. Workflows started by paygate's write-back declare every input it
sends; the trigger file is a Process Automation trigger whose workflow Genesys would start.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import yaml

from integrations.genesys import RECIPES_DIR
from integrations.genesys.harness import load_actions
from integrations.genesys.writeback import WORKFLOW_INPUTS

ROOT = Path(__file__).resolve().parents[2]
RECIPES = RECIPES_DIR
DOC = ROOT / "docs" / "architect-recipes.md"
FLOW_FILES = sorted(RECIPES.glob("*.yaml"))
TRIGGER_FILES = sorted(RECIPES.glob("*-trigger.json"))
EXPORTS = {a["name"]: a for a in load_actions().values()}

# Archy's flow-type keys (https://developer.genesys.cloud/devapps/archy/flowAuthoring/)
FLOW_TYPES = {"inboundCall", "inboundShortMessage", "inboundEmail", "inboundChat", "inQueueCall",
              "inQueueShortMessage", "inQueueEmail", "outboundCall", "secureCall", "workflow", "workitem",
              "commonModule", "bot", "digitalBot", "voicemail", "voiceSurvey", "surveyInvite"}
VARIABLE_KINDS = {"stringVariable", "integerVariable", "booleanVariable", "decimalVariable", "jsonVariable",
                  "dateTimeVariable", "durationVariable", "stringCollectionVariable"}
EXTERNAL_ACTIONS = {("billing", "Billing - Record Payment"), ("billing", "Billing - Apply Top-up"),
                    ("billing", "Billing - Record Subscription")}
"""Data actions of the customer's own integrations that a recipe shows being called, not shipped here."""
NOT_IN_A_RECIPE = {"paygate - Custom Auth", "paygate - Get Refund"}
"""Shipped exports no recipe needs: the auth action, and Get Refund (for Scripts and supervisors' flows)."""
PLATFORM = "purecloud-data-actions"

# Process Automation triggers (https://help.mypurecloud.com/articles/overview-of-triggers/)
TRIGGER_OPERATORS = {"GreaterThanOrEqual", "LessThanOrEqual", "Equal", "NotEqual", "LessThan", "GreaterThan",
                     "NotIn", "In", "Contains", "All", "Exists", "Size"}
ACW_TOPIC = "v2.detail.events.conversation.{id}.acw"
ACW_FIELDS = {"eventTime", "conversationId", "participantId", "sessionId", "mediaType", "provider", "direction",
              "ani", "dnis", "addressTo", "addressFrom", "callbackUserName", "callbackNumbers",
              "callbackScheduledTime", "subject", "messageType", "userId", "queueId", "wrapupCode",
              "wrapupNotes", "wrapupDurationMs", "conversationExternalContactIds",
              "conversationExternalOrganizationIds", "utilizationLabel", "divisionId"}
"""Fields of the after-call-work detail event (SDK ``AcwDetailEventTopicAfterCallWorkEvent``)."""
CUSTOMER_END_TOPIC = "v2.detail.events.conversation.{id}.customer.end"
CUSTOMER_END_FIELDS = {"eventTime", "conversationId", "participantId", "sessionId", "disconnectType", "mediaType",
                       "provider", "direction", "ani", "dnis", "addressTo", "addressFrom", "callbackUserName",
                       "callbackNumbers", "callbackScheduledTime", "subject", "messageType", "externalOrganizationId",
                       "externalContactId", "divisionId", "interactingDurationMs",
                       "conversationExternalContactIds", "conversationExternalOrganizationIds"}
"""Fields of the customer-end detail event (SDK ``CustomerEndDetailEventTopicCustomerEndEvent``; the
``*EndDetailEventTopic*`` events share them)."""
TOPIC_FIELDS = {ACW_TOPIC: ACW_FIELDS, CUSTOMER_END_TOPIC: CUSTOMER_END_FIELDS}
REFUND_TRIGGER = RECIPES / "6-refund-by-wrapup-trigger.json"
CLOSE_TRIGGER = RECIPES / "9-close-on-conversation-end-trigger.json"


def load_flow(path: Path) -> tuple[str, dict]:
    document = yaml.safe_load(path.read_text(encoding="utf-8"))
    assert isinstance(document, dict) and len(document) == 1, f"{path.name}: one top-level flow-type key"
    (flow_type, flow), = document.items()
    return flow_type, flow


def walk(node, path=()):
    """Yields ``(path, dict)`` for every mapping in the tree."""
    if isinstance(node, dict):
        yield path, node
        for key, value in node.items():
            yield from walk(value, path + (key,))
    elif isinstance(node, list):
        for i, value in enumerate(node):
            yield from walk(value, path + (i,))


def all_keys(node):
    for _, mapping in walk(node):
        yield from mapping


def declared_variables(flow: dict) -> dict[str, dict]:
    """Every variable declared at flow level or in a task / state: name → ``{"kind", "isInput", ...}``."""
    found = {}
    for _, mapping in walk(flow):
        for entry in mapping.get("variables") or [] if isinstance(mapping.get("variables"), list) else []:
            (kind, spec), = entry.items()
            assert kind in VARIABLE_KINDS, kind
            found[spec["name"]] = {"kind": kind, **spec}
    return found


def data_action_calls(flow: dict):
    """``(action kind, category, action name, call spec)`` for every data action a flow calls."""
    for _, mapping in walk(flow):
        for kind in ("callData", "callSecureData"):
            call = mapping.get(kind)
            if not isinstance(call, dict):
                continue
            (category, inner), = call["category"].items()
            (name, spec), = inner["dataAction"].items()
            yield kind, category, name, spec or {}


@pytest.fixture(scope="module", params=[p.name for p in FLOW_FILES])
def recipe(request):
    path = RECIPES / request.param
    return path.name, *load_flow(path)


def test_the_recipes_are_files_and_the_doc_links_every_one():
    names = {p.name for p in FLOW_FILES} | {p.name for p in TRIGGER_FILES}
    assert {"1-topup-messaging-bot.yaml", "2-pay-by-text-call.yaml", "3-secure-card-entry.yaml",
            "4-payment-result-workflow.yaml", "5-dispute-hold-call.yaml", "5-dispute-hold-workflow.yaml",
            "6-refund-by-wrapup-workflow.yaml", "6-refund-by-wrapup-trigger.json"} <= names
    assert names == {p.name for p in RECIPES.iterdir()}, "only flows and triggers live in recipes/"
    doc = DOC.read_text(encoding="utf-8")
    for name in names:
        assert f"integrations/genesys/recipes/{name}" in doc, name
    for block in re.findall(r"```yaml\n(.*?)```", doc, flags=re.S):  # what the doc still shows must parse too
        yaml.safe_load(block)


def test_every_flow_parses_with_one_flow_type_and_no_yaml_1_1_surprises(recipe):
    name, flow_type, flow = recipe
    assert flow_type in FLOW_TYPES, (name, flow_type)
    assert isinstance(flow["name"], str) and flow["name"].startswith("paygate "), name
    assert flow["startUpRef"].startswith(f"/{flow_type}/"), name
    assert flow["defaultLanguage"] and flow["supportedLanguages"], name
    bad = [k for k in all_keys(flow) if not isinstance(k, str)]
    assert not bad, f"{name}: keys read as {bad!r} (quote yes/no/on/off keys)"
    refs = re.findall(r"/(?:tasks/task|states/state)\[([^\]]+)\]", json.dumps(flow))
    targets = {m.get("refId") for _, m in walk(flow) if "refId" in m}
    assert set(refs) <= targets, (name, set(refs) - targets)


def test_every_data_action_is_a_shipped_export_used_by_its_contract(recipe):
    name, _flow_type, flow = recipe
    calls = list(data_action_calls(flow))
    assert calls, name
    for kind, category, action_name, spec in calls:
        if (category, action_name) in EXTERNAL_ACTIONS:
            continue
        export = EXPORTS.get(action_name)
        assert export is not None, f"{name}: {action_name!r} is not a shipped export"
        if export["integrationType"] == PLATFORM:
            assert category != "paygate", (name, action_name)  # Genesys Cloud Data Actions integration
        else:
            assert category == "paygate", (name, action_name)
        assert kind == ("callSecureData" if export["secure"] else "callData"), (name, action_name, kind)
        contract = export["contract"]
        inputs = set(spec.get("inputs") or {})
        declared_in = set(contract["input"]["inputSchema"]["properties"])
        assert inputs <= declared_in, (name, action_name, inputs - declared_in)
        required = set(contract["input"]["inputSchema"].get("required", []))
        assert required <= inputs, (name, action_name, required - inputs)
        outputs = set(spec.get("successOutputs") or {})
        declared_out = set(contract["output"]["successSchema"]["properties"])
        assert outputs <= declared_out, (name, action_name, outputs - declared_out)


BUILTINS = {"Flow.StartDateTimeUtc", "Flow.InvocationData"}
"""Architect's built-in flow variables the recipes read (Call.* and Message.* are built in as a whole)."""


def test_variables_read_and_written_are_declared(recipe):
    name, _flow_type, flow = recipe
    declared = set(declared_variables(flow))
    written, read = set(), set()
    for _, mapping in walk(flow):
        for key in ("var", "variable", "outputVariable"):
            if isinstance(mapping.get(key), str):
                written.add(mapping[key])
        if isinstance(mapping.get("exp"), str):
            read.update(re.findall(r"\b(?:Flow|Task)\.[A-Za-z_]\w*", mapping["exp"]))
    assert written <= declared, (name, written - declared)
    assert read, name
    assert read <= declared | BUILTINS, (name, read - declared - BUILTINS)


def test_card_digits_only_in_secure_variables_of_the_secure_flow(recipe):
    name, flow_type, flow = recipe
    variables = declared_variables(flow)
    secure = {v for v, spec in variables.items() if spec.get("secure")}
    if flow_type != "secureCall":
        assert not secure, name
        return
    assert {"Task.cardNumber", "Task.cvc", "Task.expiry"} <= secure
    for _kind, _category, action_name, spec in data_action_calls(flow):
        uses_secret = any(re.search(r"Task\.(cardNumber|cvc|expiry)\b", json.dumps(v)) for v in
                          (spec.get("inputs") or {}).values())
        assert not uses_secret or EXPORTS[action_name]["secure"], action_name


def test_workflows_started_by_the_write_back_declare_every_input_it_sends(recipe):
    name, flow_type, flow = recipe
    variables = declared_variables(flow)
    if flow_type != "workflow" or "Flow.eventId" not in variables:
        return
    inputs = {v for v, spec in variables.items() if spec.get("isInput")}
    assert set(WORKFLOW_INPUTS) <= inputs, (name, set(WORKFLOW_INPUTS) - inputs)
    assert all(variables[k]["kind"] == "stringVariable" for k in WORKFLOW_INPUTS), name


def test_the_dispute_hold_workflow_maps_the_hold_events_to_the_dispute_states():
    _, flow = load_flow(RECIPES / "5-dispute-hold-workflow.yaml")
    (mapping,) = [m["value"]["exp"] for _, m in walk(flow) if m.get("variable") == "Flow.holdState"
                  and isinstance(m.get("value"), dict) and "exp" in m["value"]]
    states = re.compile(r'"(HELD|CHARGED|RELEASED)"')
    for event, state in (("hold.authorized", "HELD"), ("hold.captured", "CHARGED"), ("hold.voided", "RELEASED"),
                         ("hold.expired", "RELEASED")):
        at = mapping.index(f'Flow.eventType == "{event}"')
        assert states.search(mapping, at).group(1) == state, (event, state)  # the branch the event takes
    assert "hold.expiring" not in mapping  # a lapse warning leaves the state HELD
    used = {n for _, _, n, _ in data_action_calls(flow)}
    assert {"paygate - Capture Payment", "paygate - Void Payment"} <= used
    _, call = load_flow(RECIPES / "5-dispute-hold-call.yaml")
    create = next(s for _, _, n, s in data_action_calls(call) if n == "paygate - Create Payment Session")
    assert create["inputs"]["intent"] == {"lit": "hold"}
    assert "INITIATED" in json.dumps(call)


@pytest.mark.parametrize("path", [REFUND_TRIGGER], ids=lambda p: p.name)
def test_the_trigger_is_an_after_call_work_trigger_of_a_recipe_workflow(path):
    trigger = json.loads(path.read_text(encoding="utf-8"))  # strict JSON, as the API takes it
    assert {"enabled", "name", "target", "topicName"} <= set(trigger)  # CreateTriggerRequest's required fields
    assert trigger["topicName"] == ACW_TOPIC
    assert trigger["target"]["type"] == "Workflow"
    data_format = trigger["target"]["workflowTargetSettings"]["dataFormat"]
    assert data_format in {"Json", "TopLevelPrimitives"}
    assert len(trigger.get("description", "")) <= 512
    assert not ("eventTTLSeconds" in trigger and "delayBySeconds" in trigger)
    assert trigger.get("eventTTLSeconds", 10) >= 10
    criteria = trigger["matchCriteria"]
    assert all(c["operator"] in TRIGGER_OPERATORS and set(c) <= {"jsonPath", "operator", "value", "values"}
               for c in criteria)
    assert any(c["jsonPath"] == "wrapupCode" and c["operator"] in {"Equal", "In"} for c in criteria)
    assert all(c["jsonPath"] in ACW_FIELDS for c in criteria)

    workflows = {f["name"]: (p, f, t) for p in FLOW_FILES for t, f in [load_flow(p)] if t == "workflow"}
    named = [n for n in workflows if n in trigger["description"]]
    assert len(named) == 1, "the description names the recipe workflow it starts"
    _path, flow, _ = workflows[named[0]]
    variables = declared_variables(flow)
    if data_format == "TopLevelPrimitives":
        inputs = {v.removeprefix("Flow.") for v, spec in variables.items() if spec.get("isInput")}
        assert inputs <= ACW_FIELDS and {"conversationId", "wrapupCode"} <= inputs
        clash = {v for v, spec in variables.items() if not spec.get("isInput")
                 and v.startswith("Flow.") and v.removeprefix("Flow.") in ACW_FIELDS}
        assert not clash, f"non-input variables named like event fields stop the trigger: {clash}"
    used = {n: s for _, _, n, s in data_action_calls(flow)}
    refund = used["paygate - Create Refund"]
    assert refund["inputs"]["dispositionCode"] == {"exp": "Flow.wrapupCode"}
    assert refund["inputs"]["conversationId"] == {"exp": "Flow.conversationId"}
    assert refund["inputs"]["participantId"] == {"exp": "Flow.customerParticipantId"}  # not the agent's
    assert {"paygate - List Conversation Payments", "paygate - Genesys Get Customer Participant"} <= set(used)
    assert "Refund_Failed_Manual_Review" in json.dumps(flow)


def test_every_flow_facing_export_appears_in_a_recipe():
    used = {n for p in FLOW_FILES for _, _, n, _ in data_action_calls(load_flow(p)[1])}
    assert set(EXPORTS) - NOT_IN_A_RECIPE <= used, set(EXPORTS) - NOT_IN_A_RECIPE - used


def _trigger_workflow(trigger: dict) -> dict:
    """The recipe workflow a trigger's description names (exactly one)."""
    workflows = {f["name"]: f for p in FLOW_FILES for t, f in [load_flow(p)] if t == "workflow"}
    named = [n for n in workflows if n in trigger["description"]]
    assert len(named) == 1, "the description names the recipe workflow it starts"
    return workflows[named[0]]


@pytest.mark.parametrize("path", TRIGGER_FILES, ids=lambda p: p.name)
def test_every_trigger_is_a_process_automation_trigger_of_a_recipe_workflow(path):
    trigger = json.loads(path.read_text(encoding="utf-8"))
    assert {"enabled", "name", "target", "topicName"} <= set(trigger)
    fields = TOPIC_FIELDS[trigger["topicName"]]  # a topic whose event fields are known
    assert trigger["target"]["type"] == "Workflow"
    data_format = trigger["target"]["workflowTargetSettings"]["dataFormat"]
    assert data_format in {"Json", "TopLevelPrimitives"}
    assert len(trigger.get("description", "")) <= 512 and trigger.get("eventTTLSeconds", 10) >= 10
    assert not ("eventTTLSeconds" in trigger and "delayBySeconds" in trigger)
    for c in trigger.get("matchCriteria", []):
        assert c["operator"] in TRIGGER_OPERATORS and set(c) <= {"jsonPath", "operator", "value", "values"}
        assert c["jsonPath"] in fields
    variables = declared_variables(_trigger_workflow(trigger))
    if data_format == "TopLevelPrimitives":
        inputs = {v.removeprefix("Flow.") for v, spec in variables.items() if spec.get("isInput")}
        assert "conversationId" in inputs and inputs <= fields
        clash = {v for v, spec in variables.items() if not spec.get("isInput")
                 and v.startswith("Flow.") and v.removeprefix("Flow.") in fields}
        assert not clash, f"non-input variables named like event fields stop the trigger: {clash}"


def test_the_conversation_end_trigger_closes_the_conversation():
    """Recipe 9: the customer leaving (customer.end) closes the conversation's payment links."""
    trigger = json.loads(CLOSE_TRIGGER.read_text(encoding="utf-8"))
    assert trigger["topicName"] == CUSTOMER_END_TOPIC and trigger["enabled"] is True
    media = next(c for c in trigger["matchCriteria"] if c["jsonPath"] == "mediaType")
    assert {"VOICE", "MESSAGE"} <= set(media["values"])
    calls = {n: s for _, _, n, s in data_action_calls(_trigger_workflow(trigger))}
    assert calls["paygate - Close Conversation"]["inputs"] == {"conversationId": {"exp": "Flow.conversationId"}}


def test_the_seed_recipes_use_the_issue_8_actions():
    """Seeds 000, 001 and 003: the busy pre-check before a payment starts, the subscription enrollment, the
    caller-entered amount before the card, and the exactly-once top-up keyed by the event id."""
    def calls(name):
        return [(n, s) for _, _, n, s in data_action_calls(load_flow(RECIPES / name)[1])]

    bot = [n for n, _ in calls("1-topup-messaging-bot.yaml")]
    assert bot.index("paygate - Check Customer Busy") < bot.index("paygate - Create Payment Session")
    enrollment = dict(calls("7-subscription-enrollment-call.yaml"))
    session = enrollment["paygate - Create Payment Session"]["inputs"]
    assert session["intent"] == {"lit": "subscription"} and "subscriptionInterval" in session
    assert "subscriptionId" in enrollment["paygate - Get Payment Session"]["successOutputs"]
    create = enrollment["paygate - Create Subscription"]["inputs"]
    assert "Call.ConversationId" in create["idempotencyKey"]["exp"]  # stable across retries of the same enrollment
    assert "paygate - Cancel Subscription" in enrollment
    amount = [n for n, _ in calls("8-caller-entered-amount-call.yaml")]
    assert amount.index("paygate - Set Payment Amount") < amount.index("paygate - Get Payment Session")
    created = dict(calls("8-caller-entered-amount-call.yaml"))["paygate - Create Payment Session"]["inputs"]
    assert {"amountMin", "amountMax"} <= set(created) and "amount" not in created
    secure = dict(calls("3-secure-card-entry.yaml"))["paygate - Submit Card"]
    assert secure["inputs"]["ani"] == {"exp": "Call.Ani"} and "busy" in secure["successOutputs"]
    workflow = load_flow(RECIPES / "4-payment-result-workflow.yaml")[1]
    (topup,) = [s for _, c, n, s in data_action_calls(workflow) if n == "Billing - Apply Top-up"]
    assert topup["inputs"]["idempotencyKey"] == {"exp": "Flow.eventId"}
    conditions = [m["condition"]["exp"] for _, m in walk(workflow) if isinstance(m.get("condition"), dict)]
    assert 'Flow.intent == "topup"' in conditions
