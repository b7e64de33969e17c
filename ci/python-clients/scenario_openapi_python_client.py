"""A tenant's session through the client that openapi-python-client generated (functionary_client).

Usage: python scenario_openapi_python_client.py BASE_URL ADMIN_TOKEN
Every call goes through the generated, typed API: `sync_detailed` returns a Response whose
`parsed` is the model the spec declares for that status (ErrorBody for every error status).
"""

from __future__ import annotations

from typing import Any

from common import Checks, arguments, tenant_config, unique_slug
from functionary_client import AuthenticatedClient, Client
from functionary_client.api.admin import create_tenant, get_config, issue_key
from functionary_client.api.health import healthz
from functionary_client.api.ingest import batch, identify, track
from functionary_client.api.instances import get_instance, list_events
from functionary_client.models import (
    BatchItemEventRequest,
    BatchItemEventRequestType,
    BatchItemIdentifyRequest,
    BatchItemIdentifyRequestType,
    BatchRequest,
    ConfigDocument,
    CreateKeyRequest,
    CreateTenantRequest,
    ErrorBody,
    EventPage,
    EventRequest,
    EventRequestProperties,
    EventResult,
    Health,
    IdentifyRequest,
    IdentifyRequestProperties,
    IdentifyResult,
    Instance,
    IssuedKey,
    Scope,
    Tenant,
)
from functionary_client.types import UNSET, Response

LABEL = "openapi-python-client"


def shown(response: Response[Any]) -> str:
    """What a failed check prints: the status and the raw body."""
    return f"HTTP {int(response.status_code)}: {response.content[:500]!r}"


def error_of(checks: Checks, step: str, response: Response[Any], status: int, code: str) -> ErrorBody:
    """Asserts that the response is the TYPED error the spec declares: an ErrorBody, parsed."""
    parsed = response.parsed
    checks.check(
        f"{step}: {status} as a typed ErrorBody with error.code == {code!r}",
        int(response.status_code) == status
        and isinstance(parsed, ErrorBody)
        and parsed.status_code == status
        and parsed.error.code == code
        and isinstance(parsed.error.message, str),
        shown(response),
    )
    assert isinstance(parsed, ErrorBody)
    return parsed


def scenario(checks: Checks) -> None:
    base_url, admin_token = arguments()

    # --- operators and admins ------------------------------------------------------------------
    anonymous = Client(base_url=base_url, raise_on_unexpected_status=True)
    health = healthz.sync_detailed(client=anonymous)
    checks.check("GET /healthz answers a typed Health", isinstance(health.parsed, Health), shown(health))

    admin = AuthenticatedClient(base_url=base_url, token=admin_token, raise_on_unexpected_status=True)
    slug = unique_slug("ci-opc")
    config_yaml = tenant_config(slug)
    # The config goes in with the tenant (CreateTenantRequest.config): openapi-python-client does
    # not generate PUT /admin/v1/tenants/{slug}/config at all ("Unsupported content type
    # text/plain": it has no text/plain request bodies, upstream issue #542), so creating the
    # tenant with its config is the only typed way to upload one, and a later config change has
    # no typed call. (Its `content_type_overrides` mapping text/plain to application/octet-stream
    # does generate the call, but the generated code reads `body.payload` off a `str`: broken.)
    created = create_tenant.sync_detailed(
        client=admin,
        body=CreateTenantRequest(slug=slug, display_name="Python client CI", config=config_yaml),
    )
    tenant = created.parsed
    checks.check(
        f"POST /admin/v1/tenants creates {slug} with its config as version 1",
        int(created.status_code) == 201
        and isinstance(tenant, Tenant)
        and tenant.slug == slug
        and tenant.config_version == 1,
        shown(created),
    )

    stored = get_config.sync_detailed(slug, client=admin)
    checks.check(
        "GET /admin/v1/tenants/{slug}/config returns the YAML as uploaded",
        isinstance(stored.parsed, ConfigDocument) and stored.parsed.version == 1 and stored.parsed.yaml == config_yaml,
        shown(stored),
    )

    issued = issue_key.sync_detailed(
        slug, client=admin, body=CreateKeyRequest(name="python client CI", scopes=[Scope.INGEST, Scope.READ])
    )
    key = issued.parsed
    checks.check(
        "POST /admin/v1/tenants/{slug}/keys issues a key with both scopes",
        int(issued.status_code) == 201
        and isinstance(key, IssuedKey)
        and key.token.count(".") == 2
        and set(key.scopes) == {Scope.INGEST, Scope.READ},
        shown(issued),
    )
    assert isinstance(key, IssuedKey)

    # --- the tenant's backend ------------------------------------------------------------------
    api = AuthenticatedClient(base_url=base_url, token=key.token, raise_on_unexpected_status=True)

    # Mixed string and integer ids: the generated field is list[int | str].
    first = identify.sync_detailed(
        client=api,
        body=IdentifyRequest(
            model="customer",
            ids=["usr_1", 42],
            display_name="Ada",
            properties=IdentifyRequestProperties.from_dict({"email": "ada@example.com", "nickname": "ada"}),
        ),
    )
    ada = first.parsed
    checks.check(
        'identify customer ids ["usr_1", 42] creates one instance holding "usr_1" and "42"',
        isinstance(ada, IdentifyResult)
        and ada.created is True
        and ada.model == "customer"
        and sorted(ada.ids) == ["42", "usr_1"]
        and ada.pending == 0,
        shown(first),
    )
    assert isinstance(ada, IdentifyResult)

    org_call = identify.sync_detailed(
        client=api,
        body=IdentifyRequest(
            model="organization",
            ids=["org_1"],
            properties=IdentifyRequestProperties.from_dict({"plan": "pro"}),
            child_ids=["usr_2"],  # nobody holds usr_2 yet: the link waits
        ),
    )
    org = org_call.parsed
    checks.check(
        'identify organization with childIds ["usr_2"] (unknown yet) answers pending == 1',
        isinstance(org, IdentifyResult) and org.created is True and org.pending == 1,
        shown(org_call),
    )
    assert isinstance(org, IdentifyResult)

    child_call = identify.sync_detailed(
        client=api,
        body=IdentifyRequest(
            model="customer",
            ids=["usr_2"],
            properties=IdentifyRequestProperties.from_dict({"email": "grace@example.com"}),
        ),
    )
    grace = child_call.parsed
    checks.check(
        'identify the child customer "usr_2" creates it',
        isinstance(grace, IdentifyResult) and grace.created is True and grace.ids == ["usr_2"],
        shown(child_call),
    )
    assert isinstance(grace, IdentifyResult)

    org_read = get_instance.sync_detailed("organization", "org_1", client=api)
    org_now = org_read.parsed
    checks.check(
        'GET organization "org_1" lists usr_2 in children and nothing pending',
        isinstance(org_now, Instance)
        and org_now.instance_id == org.instance_id
        and [(c.instance_id, c.model, c.ids) for c in org_now.children] == [(grace.instance_id, "customer", ["usr_2"])]
        and org_now.pending == []
        and org_now.properties.to_dict() == {"plan": "pro"},
        shown(org_read),
    )

    signup = track.sync_detailed(
        client=api,
        body=EventRequest(
            name="sign_up",
            ids=[42],
            properties=EventRequestProperties.from_dict({"plan": "pro"}),
            message_id=f"{slug}-signup-1",
        ),
    )
    checks.check(
        "POST /api/v1/events sign_up on id 42 is accepted on Ada's instance",
        isinstance(signup.parsed, EventResult)
        and signup.parsed.accepted is True
        and signup.parsed.instance_id == ada.instance_id
        and signup.parsed.duplicate is False
        and isinstance(signup.parsed.event_id, str),
        shown(signup),
    )

    again = track.sync_detailed(
        client=api, body=EventRequest(name="sign_up", ids=["usr_1"], message_id=f"{slug}-signup-1")
    )
    checks.check(
        "the same messageId again answers duplicate == true with the first event's id",
        isinstance(again.parsed, EventResult)
        and again.parsed.accepted is True
        and again.parsed.duplicate is True
        and again.parsed.event_id == signup.parsed.event_id,
        shown(again),
    )

    # A property sent as null is removed: the free-form properties object must carry the null.
    unset = identify.sync_detailed(
        client=api,
        body=IdentifyRequest(
            model="customer", ids=[42], properties=IdentifyRequestProperties.from_dict({"nickname": None})
        ),
    )
    checks.check(
        'identify [42] with properties {"nickname": null} updates Ada (created == false)',
        isinstance(unset.parsed, IdentifyResult)
        and unset.parsed.created is False
        and unset.parsed.instance_id == ada.instance_id,
        shown(unset),
    )

    lost = track.sync_detailed(client=api, body=EventRequest(name="sign_up", ids=["usr_nobody", 777]))
    checks.check(
        "an event for ids nobody holds answers accepted == false, reason unknown_instance",
        isinstance(lost.parsed, EventResult)
        and lost.parsed.accepted is False
        and lost.parsed.reason == "unknown_instance"
        and lost.parsed.event_id is UNSET,
        shown(lost),
    )

    by_int = get_instance.sync_detailed("customer", "42", client=api)
    checks.check(
        'GET customer by the integer id as path "42" returns Ada, "nickname" removed',
        isinstance(by_int.parsed, Instance)
        and by_int.parsed.instance_id == ada.instance_id
        and sorted(by_int.parsed.ids) == ["42", "usr_1"]
        and by_int.parsed.display_name == "Ada"
        and by_int.parsed.properties.to_dict() == {"email": "ada@example.com"}
        and by_int.parsed.parents == []
        and by_int.parsed.pending == [],
        shown(by_int),
    )

    events = list_events.sync_detailed("customer", "usr_1", client=api, limit=10)
    page = events.parsed
    checks.check(
        "GET its events, newest first: identify (nickname: null), sign_up (plan: pro), identify",
        isinstance(page, EventPage)
        and [e.name for e in page.events] == ["onFunctionaryIdentify", "sign_up", "onFunctionaryIdentify"]
        and page.events[1].properties.to_dict() == {"plan": "pro"},
        shown(events),
    )

    # --- typed errors --------------------------------------------------------------------------
    conflict = identify.sync_detailed(client=api, body=IdentifyRequest(model="customer", ids=["usr_1", "usr_2"]))
    body = error_of(checks, 'identify ids of two instances ["usr_1", "usr_2"]', conflict, 409, "ids_conflict")
    checks.check(
        "the 409 details name which id belongs to which instance",
        {(d.id, d.instance_id) for d in body.error.details}
        == {("usr_1", ada.instance_id), ("usr_2", grace.instance_id)},
        body.to_dict(),
    )

    unknown = identify.sync_detailed(client=api, body=IdentifyRequest(model="invoice", ids=["inv_1"]))
    error_of(checks, 'identify an undeclared model "invoice"', unknown, 422, "unknown_model")

    junk = identify.sync_detailed(client=api, body=IdentifyRequest(model="customer", ids=["usr_3", "null"]))
    body = error_of(checks, 'identify with the junk id "null"', junk, 422, "invalid_id")
    checks.check(
        "the 422 points at /ids/1",
        [d.pointer for d in body.error.details] == ["/ids/1"],
        body.to_dict(),
    )

    missing = get_instance.sync_detailed("customer", "usr_nobody", client=api)
    error_of(checks, "GET an instance nobody holds", missing, 404, "instance_not_found")

    # --- batch: the anyOf unions both ways ---------------------------------------------------------
    mixed = batch.sync_detailed(
        client=api,
        body=BatchRequest(
            batch=[
                BatchItemIdentifyRequest(
                    type_=BatchItemIdentifyRequestType.IDENTIFY, model="customer", ids=[7, "usr_7"]
                ),
                BatchItemEventRequest(type_=BatchItemEventRequestType.EVENT, name="sign_up", ids=["usr_7"]),
                BatchItemIdentifyRequest(type_=BatchItemIdentifyRequestType.IDENTIFY, model="invoice", ids=["inv_1"]),
            ]
        ),
    )
    results = getattr(mixed.parsed, "results", None)
    checks.check(
        "POST /api/v1/batch answers [IdentifyResult, EventResult, ErrorBody(422 unknown_model)]",
        isinstance(results, list)
        and len(results) == 3
        and isinstance(results[0], IdentifyResult)
        and results[0].created is True
        and isinstance(results[1], EventResult)
        and results[1].accepted is True
        and results[1].instance_id == results[0].instance_id
        and isinstance(results[2], ErrorBody)
        and results[2].status_code == 422
        and results[2].error.code == "unknown_model",
        shown(mixed),
    )


if __name__ == "__main__":
    Checks(LABEL).run(scenario)
