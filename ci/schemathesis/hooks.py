"""schemathesis hooks for ci/schemathesis/run.sh (loaded through SCHEMATHESIS_HOOKS).

They narrow three checks to what the product contract (DESIGN.md in shared/, "DESIGN" below)
says; every other failure of every check is kept, and every dropped one is logged to
$ST_DROPPED_LOG and counted by run.sh. They add one check and steer generation (see the end).

1. positive_data_acceptance (ST202). A request that matches the OpenAPI schema can still break a
   rule that depends on the tenant's config or stored data, which no static schema can state:
   the model must be declared in the tenant's config (DESIGN §2 `unknown_model`), junk ids such
   as "0" or "null" are refused (§2 `invalid_id`), properties must match the model's or event's
   schema from the config (§2/§3 `invalid_properties`), a parent of an undeclared parent model or
   a self link is refused (§2.3), a cursor must be one the API returned (§4), a config must pass
   the config checks (§5/§6 `invalid_config`), an event is named by exactly one of `name` and
   `event` (§3 `invalid_event_name`, for such bodies only; see EVENT_RULES). Those answers are
   422 by contract, so a 422 is accepted for a schema-valid request only when its `error.code`
   is one of these. A 422 for a shape reason (`invalid_request`, ...) still fails: that is the
   server and its spec disagreeing.

2. negative_data_rejection (ST201) on POST /api/v1/batch. A batch answers 200 with one result
   per item, and a malformed item fails alone with its own 422 result (DESIGN §3: "One bad item
   does not fail the others"). So a schema violation inside `batch[i]` is expected to answer 200.
   The failure is dropped only when the request's top level is a well-formed batch (an object
   with exactly `batch`: an array of 1-1000 items) and the answer holds at least one item result
   with statusCode 422; a violation of the top level itself must still be refused.

3. ensure_resource_availability (ST302) for POST /admin/v1/tenants followed by
   GET /admin/v1/tenants/{slug}/config. A tenant may be created without a config (DESIGN §5:
   `config?`), and then it has none to show: 404 `config_not_found`. The failure is dropped only
   when that is the answer AND the tenant, read back with GET /admin/v1/tenants/{slug}, exists
   and has no `configVersion`.

The added check, batch_item_results, applies the same rule to the items of a schema-valid batch.

Besides, two steering hooks (they change what is generated, never what passes):
`map_case` gives three of four schema-valid event bodies (and batch event items) that carry
neither or both of `name`/`event` exactly one name, so that events get past the naming rule and
reach the instance lookup and the event schemas (the rest still test the rule); and
`before_load_schema` adds OpenAPI links to the copy of the spec schemathesis tests (the
served spec is not changed), so that the stateful phase follows the ids the API hands out: an
identify's model and first id lead to reading, listing the events of and deleting that instance,
a listed instance leads to reading it, an issued key leads to revoking it.
"""

from __future__ import annotations

import json
import os
import zlib
from typing import Any

import requests
import schemathesis
from schemathesis.core.failures import AcceptedNegativeData
from schemathesis.specs.openapi.checks import EnsureResourceAvailability, RejectedPositiveData

# error.code values a schema-valid request may get with 422, per operation, and why (DESIGN §).
TENANT_RULES = {
    "unknown_model",  # §2, §3: the model must be declared in the tenant's config
    "invalid_id",  # §2: junk ids ("0", "null", "-1", blank, blockedIds) are refused
    "invalid_properties",  # §2, §3: properties must match the config's schema
    "properties_too_large",  # §2, §3: serialized properties are at most 32 KiB
    "parent_not_allowed",  # §2.3: a model's `parents` in the config restrict its links
    "self_link",  # §2.3: an instance can not be its own parent
    "event_not_for_model",  # §6: an event's `forModels` in the config
    "undeclared_event",  # §3: settings.undeclaredEvents: reject
}
# §3: an event is named by `name` or its alias `event`, exactly one of them. OpenAPI 3.0 can say
# that only with `oneOf`/`anyOf` over `required`, which makes openapi-python-client (checked by
# ci/python-clients) drop the EventRequest models without an error, so the spec says it in the
# field descriptions. 422 `invalid_event_name` is accepted for exactly those bodies, and for the
# names reserved for system events (`onFunctionary...`, README "Tenant config").
EVENT_RULES = TENANT_RULES | {"invalid_event_name"}
CONTRACT_422 = {
    "identify": TENANT_RULES,
    "track": EVENT_RULES,
    "trackLegacy": EVENT_RULES,
    # §4: a cursor is opaque and must be one the API returned.
    "listInstances": {"invalid_cursor"},
    "listEvents": {"invalid_cursor"},
    # §5, §6: a config (any text, per the spec) must pass the config checks.
    "createTenant": {"invalid_config"},
    "putConfig": {"invalid_config"},
}


def _event_misnamed(body: Any) -> bool:
    """Whether an event body breaks the naming rule the spec states only in words."""
    if not isinstance(body, dict):
        return False
    names = [body[key] for key in ("name", "event") if key in body]
    return len(names) != 1 or (isinstance(names[0], str) and names[0].startswith("onFunctionary"))


def _json(content: bytes) -> Any:
    try:
        return json.loads(content)
    except ValueError:
        return None


def _operation_id(case: Any) -> str | None:
    return case.operation.definition.raw.get("operationId")


def _contract_422(case: Any, response: Any) -> bool:
    if response.status_code != 422:
        return False
    body = _json(response.content)
    code = body.get("error", {}).get("code") if isinstance(body, dict) else None
    if code not in CONTRACT_422.get(_operation_id(case) or "", set()):
        return False
    if code == "invalid_event_name":
        return _event_misnamed(case.body)
    return True


def _item_failed_alone(case: Any, response: Any) -> bool:
    if _operation_id(case) != "batch" or response.status_code != 200:
        return False
    body = case.body
    if not (isinstance(body, dict) and set(body) == {"batch"}):
        return False
    items = body["batch"]
    if not (isinstance(items, list) and 1 <= len(items) <= 1000):
        return False
    answer = _json(response.content)
    results = answer.get("results") if isinstance(answer, dict) else None
    if not isinstance(results, list) or len(results) != len(items):
        return False
    return any(isinstance(result, dict) and result.get("statusCode") == 422 for result in results)


def _config_absent_by_contract(case: Any, response: Any) -> bool:
    if _operation_id(case) != "getConfig" or response.status_code != 404:
        return False
    body = _json(response.content)
    if not (isinstance(body, dict) and body.get("error", {}).get("code") == "config_not_found"):
        return False
    # Read the tenant back with the same credentials: it must exist and have no config.
    request = response.request
    url = request.url.rsplit("/config", 1)[0]
    answer = requests.get(url, headers={"Authorization": request.headers.get("Authorization", "")}, timeout=10)
    tenant = _json(answer.content) if answer.status_code == 200 else None
    return isinstance(tenant, dict) and "slug" in tenant and "configVersion" not in tenant


def _dropped(failure: Any, case: Any, response: Any) -> bool:
    """Records a dropped failure in $ST_DROPPED_LOG (one JSON line), for run.sh's summary."""
    path = os.environ.get("ST_DROPPED_LOG")
    if path:
        body = _json(response.content)
        code = body.get("error", {}).get("code") if isinstance(body, dict) else None
        line = {"operation": case.operation.label, "failure": failure.code, "status": response.status_code, "code": code}
        with open(path, "a", encoding="utf-8") as log:
            log.write(json.dumps(line) + "\n")
    return False


@schemathesis.hook
def filter_failure(context: Any, failure: Any, case: Any, response: Any) -> bool:
    if isinstance(failure, RejectedPositiveData) and _contract_422(case, response):
        return _dropped(failure, case, response)
    if isinstance(failure, AcceptedNegativeData) and _item_failed_alone(case, response):
        return _dropped(failure, case, response)
    if isinstance(failure, EnsureResourceAvailability) and _config_absent_by_contract(case, response):
        return _dropped(failure, case, response)
    return True


@schemathesis.check
def batch_item_results(ctx: Any, response: Any, case: Any) -> bool | None:
    """A batch answers one result per item, and a schema-valid item fails only for a contract reason.

    The batch itself answers 200 whatever its items do (DESIGN §3), so positive_data_acceptance
    can not see an item refused for a shape reason; this check looks inside. For a schema-valid
    batch, every item result with statusCode 422 must carry a code the single call may answer for
    a schema-valid body (see CONTRACT_422).
    """
    if _operation_id(case) != "batch" or response.status_code != 200:
        return None
    meta = case.meta
    if meta is None or not meta.generation.mode.is_positive:
        return None
    items = case.body.get("batch") if isinstance(case.body, dict) else None
    answer = _json(response.content)
    results = answer.get("results") if isinstance(answer, dict) else None
    if not isinstance(items, list) or not isinstance(results, list):
        return None
    if len(results) != len(items):
        raise AssertionError(f"{len(items)} batch items answered with {len(results)} results")
    for index, (item, result) in enumerate(zip(items, results)):
        if not isinstance(result, dict) or result.get("statusCode") != 422:
            continue
        code = (result.get("error") or {}).get("code")
        misnamed = isinstance(item, dict) and item.get("type") == "event" and _event_misnamed(item)
        allowed = TENANT_RULES | ({"invalid_event_name"} if misnamed else set())
        if code not in allowed:
            raise AssertionError(
                f"schema-valid batch item {index} refused with 422 `{code}`: {result['error'].get('message')}"
            )
    return None


def _named_event(body: dict[str, Any]) -> dict[str, Any]:
    """`body` with exactly one event name, for three of four bodies that lack one or have two."""
    if not _event_misnamed(body) or zlib.crc32(json.dumps(body, sort_keys=True, default=str).encode()) % 4 == 0:
        return body
    body = dict(body)
    name = body.pop("name", None)
    event = body.pop("event", None)
    chosen = name if isinstance(name, str) else event if isinstance(event, str) else "sign_up"
    if chosen.startswith("onFunctionary"):
        chosen = "sign_up"
    body["event" if name is None and event is not None else "name"] = chosen
    return body


# Only on the event calls: a `map_case` hook makes generation markedly slower for every operation
# it applies to.
@schemathesis.hook.apply_to(path_regex=r"^/api/v1/(events?|batch)$")
def map_case(context: Any, case: Any) -> Any:
    meta = case.meta
    if meta is None or not meta.generation.mode.is_positive or not isinstance(case.body, dict):
        return case
    operation_id = _operation_id(case)
    if operation_id in ("track", "trackLegacy"):
        case.body = _named_event(case.body)
    elif operation_id == "batch" and isinstance(case.body.get("batch"), list):
        case.body = {
            **case.body,
            "batch": [
                _named_event(item) if isinstance(item, dict) and item.get("type") == "event" else item
                for item in case.body["batch"]
            ],
        }
    return case


def _link(operation_id: str, **parameters: str) -> dict[str, Any]:
    return {"operationId": operation_id, "parameters": parameters}


# operationId -> status -> link name -> link.
LINKS = {
    "identify": {
        "200": {
            "GetIdentified": _link("getInstance", model="$response.body#/model", id="$response.body#/ids/0"),
            "ListEventsOfIdentified": _link("listEvents", model="$response.body#/model", id="$response.body#/ids/0"),
            "DeleteIdentified": _link("deleteInstance", model="$response.body#/model", id="$response.body#/ids/0"),
        }
    },
    "listInstances": {
        "200": {
            "GetListed": _link("getInstance", model="$request.path.model", id="$response.body#/instances/0/ids/0"),
        }
    },
    "issueKey": {
        "201": {
            "RevokeIssued": _link("revokeKey", slug="$request.path.slug", key_id="$response.body#/keyId"),
        }
    },
}


@schemathesis.hook
def before_load_schema(context: Any, raw_schema: dict[str, Any]) -> None:
    for operations in raw_schema.get("paths", {}).values():
        for operation in operations.values():
            if not isinstance(operation, dict):
                continue
            for status, links in LINKS.get(operation.get("operationId"), {}).items():
                response = operation.get("responses", {}).get(status)
                if response is not None:
                    response.setdefault("links", {}).update(links)
