"""A tenant's session through the client that openapi-generator's `python` generator made
(functionary_oag, pydantic v2 models over urllib3).

Usage: python scenario_openapi_generator.py BASE_URL ADMIN_TOKEN
Every call goes through the generated, typed API. Error statuses raise the generated exception for
that status (ConflictException, UnprocessableEntityException, NotFoundException, ...) whose `data`
is the ErrorBody the spec declares for it, already parsed.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import functionary_oag
from common import Checks, arguments, tenant_config, unique_slug
from functionary_oag.exceptions import (
    ApiException,
    ConflictException,
    NotFoundException,
    UnprocessableEntityException,
)
from functionary_oag.models import (
    BatchItem,
    BatchItemEventRequest,
    BatchItemIdentifyRequest,
    BatchRequest,
    CreateKeyRequest,
    CreateTenantRequest,
    ErrorBody,
    EventRequest,
    EventResult,
    IdentifyRequest,
    IdentifyResult,
    Scope,
)

# The spec has no named `Id` schema: every ids array inlines the same `oneOf [string, integer]`,
# so the generator names the one class after the first place it met it. A tenant writes ids through
# it, because a bare str/int in a List[BatchItemEventRequestIdsInner] field fails validation.
from functionary_oag.models import BatchItemEventRequestIdsInner as Id

LABEL = "openapi-generator python"


def ids(*values: str | int) -> list[Id]:
    return [Id(value) for value in values]


def client(base_url: str, token: str | None) -> functionary_oag.ApiClient:
    # Both security schemes are HTTP bearer, so one `access_token` serves either.
    return functionary_oag.ApiClient(functionary_oag.Configuration(host=base_url, access_token=token))


def error_of(
    checks: Checks,
    step: str,
    call: Callable[[], Any],
    exception: type[ApiException],
    status: int,
    code: str,
) -> ErrorBody:
    """Asserts that the call raises the generated exception for `status`, carrying a parsed ErrorBody."""
    try:
        answer = call()
    except ApiException as raised:
        data = raised.data
        checks.check(
            f"{step}: {status} as {exception.__name__} with a typed ErrorBody, error.code == {code!r}",
            isinstance(raised, exception)
            and raised.status == status
            and isinstance(data, ErrorBody)
            and data.status_code == status
            and data.error.code == code
            and isinstance(data.error.message, str),
            f"{type(raised).__name__} HTTP {raised.status} data={data!r} body={raised.body!r}",
        )
        assert isinstance(data, ErrorBody)
        return data
    checks.fail(f"{step}: expected {status}", answer)


def scenario(checks: Checks) -> None:
    base_url, admin_token = arguments()

    # --- operators and admins ------------------------------------------------------------------
    health = functionary_oag.HealthApi(client(base_url, None)).healthz()
    checks.check("GET /healthz answers a typed Health", isinstance(health, functionary_oag.Health), health)

    admin = functionary_oag.AdminApi(client(base_url, admin_token))
    slug = unique_slug("ci-oag")
    config_yaml = tenant_config(slug)
    # This client has PUT /config (text/plain), so the tenant is created bare and configured with it.
    tenant = admin.create_tenant_with_http_info(CreateTenantRequest(slug=slug, display_name="Python client CI"))
    checks.check(
        f"POST /admin/v1/tenants creates {slug} (201, no config yet)",
        tenant.status_code == 201 and tenant.data.slug == slug and tenant.data.config_version is None,
        tenant,
    )

    version = admin.put_config(slug, config_yaml)
    stored = admin.get_config(slug)
    checks.check(
        "PUT /admin/v1/tenants/{slug}/config (YAML text) stores version 1, read back as uploaded",
        version.version == 1 and stored.version == 1 and stored.yaml == config_yaml,
        (version, stored),
    )

    issued = admin.issue_key_with_http_info(
        slug, CreateKeyRequest(name="python client CI", scopes=[Scope.INGEST, Scope.READ])
    )
    key = issued.data
    checks.check(
        "POST /admin/v1/tenants/{slug}/keys issues a key with both scopes",
        issued.status_code == 201 and key.token.count(".") == 2 and set(key.scopes) == {Scope.INGEST, Scope.READ},
        issued,
    )

    # --- the tenant's backend ------------------------------------------------------------------
    api_client = client(base_url, key.token)
    ingest = functionary_oag.IngestApi(api_client)
    instances = functionary_oag.InstancesApi(api_client)

    ada = ingest.identify(
        IdentifyRequest(
            model="customer",
            ids=ids("usr_1", 42),
            display_name="Ada",
            properties={"email": "ada@example.com", "nickname": "ada"},
        )
    )
    checks.check(
        'identify customer ids ["usr_1", 42] creates one instance holding "usr_1" and "42"',
        ada.created is True and ada.model == "customer" and sorted(ada.ids) == ["42", "usr_1"] and ada.pending == 0,
        ada,
    )

    org = ingest.identify(
        IdentifyRequest(
            model="organization",
            ids=ids("org_1"),
            properties={"plan": "pro"},
            child_ids=ids("usr_2"),  # nobody holds usr_2 yet: the link waits
        )
    )
    checks.check(
        'identify organization with childIds ["usr_2"] (unknown yet) answers pending == 1',
        org.created is True and org.pending == 1,
        org,
    )

    grace = ingest.identify(
        IdentifyRequest(model="customer", ids=ids("usr_2"), properties={"email": "grace@example.com"})
    )
    checks.check(
        'identify the child customer "usr_2" creates it',
        grace.created is True and grace.ids == ["usr_2"],
        grace,
    )

    org_now = instances.get_instance("organization", "org_1")
    checks.check(
        'GET organization "org_1" lists usr_2 in children and nothing pending',
        org_now.instance_id == org.instance_id
        and [(c.instance_id, c.model, c.ids) for c in org_now.children] == [(grace.instance_id, "customer", ["usr_2"])]
        and org_now.pending == []
        and org_now.properties == {"plan": "pro"},
        org_now,
    )

    signup = ingest.track(
        EventRequest(name="sign_up", ids=ids(42), properties={"plan": "pro"}, message_id=f"{slug}-signup-1")
    )
    checks.check(
        "POST /api/v1/events sign_up on id 42 is accepted on Ada's instance",
        signup.accepted is True
        and signup.instance_id == ada.instance_id
        and signup.duplicate is False
        and isinstance(signup.event_id, str),
        signup,
    )

    again = ingest.track(EventRequest(name="sign_up", ids=ids("usr_1"), message_id=f"{slug}-signup-1"))
    checks.check(
        "the same messageId again answers duplicate == true with the first event's id",
        again.accepted is True and again.duplicate is True and again.event_id == signup.event_id,
        again,
    )

    # A property sent as null is removed: the free-form properties dict must carry the null.
    unset = ingest.identify(IdentifyRequest(model="customer", ids=ids(42), properties={"nickname": None}))
    checks.check(
        'identify [42] with properties {"nickname": null} updates Ada (created == false)',
        unset.created is False and unset.instance_id == ada.instance_id,
        unset,
    )

    lost = ingest.track(EventRequest(name="sign_up", ids=ids("usr_nobody", 777)))
    checks.check(
        "an event for ids nobody holds answers accepted == false, reason unknown_instance",
        lost.accepted is False and lost.reason == "unknown_instance" and lost.event_id is None,
        lost,
    )

    by_int = instances.get_instance("customer", "42")
    checks.check(
        'GET customer by the integer id as path "42" returns Ada, "nickname" removed',
        by_int.instance_id == ada.instance_id
        and sorted(by_int.ids) == ["42", "usr_1"]
        and by_int.display_name == "Ada"
        and by_int.properties == {"email": "ada@example.com"}
        and by_int.parents == []
        and by_int.pending == [],
        by_int,
    )

    page = instances.list_events("customer", "usr_1", limit=10)
    checks.check(
        "GET its events, newest first: identify (nickname: null), sign_up (plan: pro), identify",
        [e.name for e in page.events] == ["onFunctionaryIdentify", "sign_up", "onFunctionaryIdentify"]
        and page.events[1].properties == {"plan": "pro"},
        page,
    )

    # --- typed errors --------------------------------------------------------------------------
    body = error_of(
        checks,
        'identify ids of two instances ["usr_1", "usr_2"]',
        lambda: ingest.identify(IdentifyRequest(model="customer", ids=ids("usr_1", "usr_2"))),
        ConflictException,
        409,
        "ids_conflict",
    )
    checks.check(
        "the 409 details name which id belongs to which instance",
        {(d.id, d.instance_id) for d in body.error.details}
        == {("usr_1", ada.instance_id), ("usr_2", grace.instance_id)},
        body,
    )

    error_of(
        checks,
        'identify an undeclared model "invoice"',
        lambda: ingest.identify(IdentifyRequest(model="invoice", ids=ids("inv_1"))),
        UnprocessableEntityException,
        422,
        "unknown_model",
    )

    body = error_of(
        checks,
        'identify with the junk id "null"',
        lambda: ingest.identify(IdentifyRequest(model="customer", ids=ids("usr_3", "null"))),
        UnprocessableEntityException,
        422,
        "invalid_id",
    )
    checks.check("the 422 points at /ids/1", [d.pointer for d in body.error.details] == ["/ids/1"], body)

    error_of(
        checks,
        "GET an instance nobody holds",
        lambda: instances.get_instance("customer", "usr_nobody"),
        NotFoundException,
        404,
        "instance_not_found",
    )

    # --- batch: the anyOf unions both ways ---------------------------------------------------------
    answer = ingest.batch(
        BatchRequest(
            batch=[
                BatchItem(BatchItemIdentifyRequest(type="identify", model="customer", ids=ids(7, "usr_7"))),
                BatchItem(BatchItemEventRequest(type="event", name="sign_up", ids=ids("usr_7"))),
                BatchItem(BatchItemIdentifyRequest(type="identify", model="invoice", ids=ids("inv_1"))),
            ]
        )
    )
    results = [r.actual_instance for r in answer.results]
    checks.check(
        "POST /api/v1/batch answers [IdentifyResult, EventResult, ErrorBody(422 unknown_model)]",
        len(results) == 3
        and isinstance(results[0], IdentifyResult)
        and results[0].created is True
        and isinstance(results[1], EventResult)
        and results[1].accepted is True
        and results[1].instance_id == results[0].instance_id
        and isinstance(results[2], ErrorBody)
        and results[2].status_code == 422
        and results[2].error.code == "unknown_model",
        answer,
    )


if __name__ == "__main__":
    Checks(LABEL).run(scenario)
