// A client generated from `functionary openapi` (openapi-typescript + openapi-fetch) against a real
// server. Every call goes through the typed paths, parameters and bodies of the generated
// `schema.d.ts`, so a drift between the spec and what a client must send fails `tsc` (see
// `typeChecks` at the end), and a drift between the spec and what the server does fails a check here.
//
// Run by ./run.sh, which starts the server and passes FUNCTIONARY_URL and FUNCTIONARY_ADMIN_TOKEN.

import createClient from "openapi-fetch";
import type { components, paths } from "./generated/schema";

// Node's globals, without pulling in @types/node (tsconfig has `"types": []`).
declare const process: { env: Record<string, string | undefined>; exitCode?: number };

type Schemas = components["schemas"];

const baseUrl = need("FUNCTIONARY_URL");
const adminToken = need("FUNCTIONARY_ADMIN_TOKEN");

function need(name: string): string {
  const value = process.env[name];
  if (!value) throw new Error(`${name} is not set (run ci/ts-client/run.sh)`);
  return value;
}

let passed = 0;

class CheckFailed extends Error {}

function check(name: string, condition: boolean, detail?: unknown): void {
  if (!condition) {
    const more = detail === undefined ? "" : `\n  got: ${JSON.stringify(detail)}`;
    throw new CheckFailed(`FAIL ${name}${more}`);
  }
  passed += 1;
  console.log(`ok ${passed} - ${name}`);
}

/** Narrows an openapi-fetch result to its success branch, or fails with what came back. */
function expectData<D, E>(
  name: string,
  result: { data?: D; error?: E; response: Response },
  status: number,
): D {
  const { data, error, response } = result;
  if (error !== undefined || data === undefined || response.status !== status) {
    throw new CheckFailed(`FAIL ${name}: expected ${status}, got ${response.status} ${JSON.stringify(error ?? data)}`);
  }
  return data;
}

/** Narrows an openapi-fetch result to its typed error branch and checks status and code. */
function expectError(
  name: string,
  result: { data?: unknown; error?: Schemas["ErrorBody"]; response: Response },
  status: number,
  code: string,
): Schemas["ErrorBody"] {
  const { data, error, response } = result;
  if (error === undefined) {
    throw new CheckFailed(`FAIL ${name}: expected ${status} ${code}, got ${response.status} ${JSON.stringify(data)}`);
  }
  check(
    `${name}: ${status} ${code}`,
    response.status === status && error.statusCode === status && error.error.code === code,
    { status: response.status, error },
  );
  return error;
}

const admin = createClient<paths>({ baseUrl, headers: { Authorization: `Bearer ${adminToken}` } });

const slug = "ci-ts";
const config = `# written by ci/ts-client/scenario.ts
tenant: ${slug}
displayName: TypeScript client CI
models:
  - name: organization
    schema:
      type: object
      properties:
        plan: {type: string, enum: [free, pro, enterprise]}
  - name: customer
    parents: [organization]
    schema:
      type: object
      required: [email]
      properties:
        email: {type: string, format: email}
events:
  - name: sign_up
    forModels: [customer]
    schema: {type: object, properties: {plan: {type: string}}}
`;

async function main(): Promise<void> {
  // --- operator endpoints -------------------------------------------------------------------
  const health = expectData("healthz", await admin.GET("/healthz"), 200);
  check("GET /healthz answers status ok", health.status === "ok", health);

  // --- admin: tenant, config, key -----------------------------------------------------------
  const tenant = expectData(
    "create tenant",
    await admin.POST("/admin/v1/tenants", { body: { slug, displayName: "TypeScript client CI", config } }),
    201,
  );
  check("POST /admin/v1/tenants creates the tenant with config version 1", tenant.slug === slug && tenant.configVersion === 1, tenant);

  expectError(
    "POST /admin/v1/tenants with an existing slug",
    await admin.POST("/admin/v1/tenants", { body: { slug } }),
    409,
    "tenant_exists",
  );

  const stored = expectData(
    "get config",
    await admin.GET("/admin/v1/tenants/{slug}/config", { params: { path: { slug } } }),
    200,
  );
  check("GET /admin/v1/tenants/{slug}/config returns the YAML as sent", stored.version === 1 && stored.yaml === config, stored);

  // The config body is text/plain: openapi-fetch JSON-encodes bodies unless told otherwise.
  const putVersion = expectData(
    "put config",
    await admin.PUT("/admin/v1/tenants/{slug}/config", {
      params: { path: { slug } },
      body: config.replace("TypeScript client CI", "TypeScript client CI (v2)"),
      bodySerializer: (yaml) => yaml,
      headers: { "Content-Type": "text/plain; charset=utf-8" },
    }),
    200,
  );
  check("PUT /admin/v1/tenants/{slug}/config (text/plain YAML) stores version 2", putVersion.version === 2, putVersion);

  const badConfig = expectError(
    "PUT /admin/v1/tenants/{slug}/config with an unknown parent model",
    await admin.PUT("/admin/v1/tenants/{slug}/config", {
      params: { path: { slug } },
      body: config.replace("parents: [organization]", "parents: [organisation]"),
      bodySerializer: (yaml) => yaml,
      headers: { "Content-Type": "text/plain; charset=utf-8" },
    }),
    422,
    "invalid_config",
  );
  check(
    "the config error is located (line and pointer)",
    badConfig.error.details.some((d) => typeof d.line === "number" && typeof d.pointer === "string"),
    badConfig.error.details,
  );

  const key = expectData(
    "issue key",
    await admin.POST("/admin/v1/tenants/{slug}/keys", {
      params: { path: { slug } },
      body: { name: "ci ts client", scopes: ["ingest", "read"] },
    }),
    201,
  );
  check("POST /admin/v1/tenants/{slug}/keys issues a key with both scopes", key.token.length > 0 && key.scopes.length === 2, key);

  const api = createClient<paths>({ baseUrl, headers: { Authorization: `Bearer ${key.token}` } });

  expectError("a tenant key on the admin API", await api.GET("/admin/v1/tenants"), 403, "admin_only");
  expectError(
    "identify without a key",
    await createClient<paths>({ baseUrl }).POST("/api/v1/identify", { body: { model: "customer", ids: ["x"] } }),
    401,
    "unauthorized",
  );

  // --- identify: mixed string and integer ids -----------------------------------------------
  const ada = expectData(
    "identify ada",
    await api.POST("/api/v1/identify", {
      body: {
        model: "customer",
        ids: ["usr_1", 42],
        displayName: "Ada",
        properties: { email: "ada@example.com" },
      },
    }),
    200,
  );
  check(
    "identify with ids [\"usr_1\", 42] creates one instance holding \"usr_1\" and \"42\"",
    ada.created && ada.model === "customer" && ada.ids.includes("usr_1") && ada.ids.includes("42") && ada.pending === 0,
    ada,
  );

  const adaAgain = expectData(
    "identify ada by \"42\"",
    await api.POST("/api/v1/identify", { body: { model: "customer", ids: ["42"], properties: { plan: "pro" } } }),
    200,
  );
  check(
    "the string \"42\" selects the instance created with the integer 42",
    !adaAgain.created && adaAgain.instanceId === ada.instanceId,
    adaAgain,
  );

  // --- a pending child link pairs up when the child is identified ---------------------------
  const org = expectData(
    "identify organization",
    await api.POST("/api/v1/identify", {
      body: { model: "organization", ids: ["org_1"], properties: { plan: "pro" }, childIds: ["usr_2"] },
    }),
    200,
  );
  check("identify a parent with an unknown child id keeps 1 pending link", org.created && org.pending === 1, org);

  const orgPending = expectData(
    "read organization",
    await api.GET("/api/v1/models/{model}/instances/{id}", { params: { path: { model: "organization", id: "org_1" } } }),
    200,
  );
  check(
    "the parent lists the pending child id",
    orgPending.children.length === 0 && orgPending.pending.some((p) => p.id === "usr_2" && p.role === "child"),
    orgPending,
  );

  const grace = expectData(
    "identify grace",
    await api.POST("/api/v1/identify", {
      body: { model: "customer", ids: ["usr_2"], displayName: "Grace", properties: { email: "grace@example.com" } },
    }),
    200,
  );
  check("identify the awaited child creates it", grace.created && grace.pending === 0, grace);

  const orgLinked = expectData(
    "read organization again",
    await api.GET("/api/v1/models/{model}/instances/{id}", { params: { path: { model: "organization", id: "org_1" } } }),
    200,
  );
  check(
    "reading the parent shows the child, and nothing pending",
    orgLinked.pending.length === 0 &&
      orgLinked.children.some((c) => c.instanceId === grace.instanceId && c.model === "customer" && c.ids.includes("usr_2")),
    orgLinked,
  );

  // --- events ---------------------------------------------------------------------------------
  const signUp = expectData(
    "event sign_up",
    await api.POST("/api/v1/events", {
      body: { name: "sign_up", ids: [42], properties: { plan: "pro" }, messageId: "ci-ts-signup-1" },
    }),
    200,
  );
  check(
    "an event for integer id 42 is accepted on ada",
    signUp.accepted && signUp.instanceId === ada.instanceId && typeof signUp.eventId === "string" && signUp.duplicate === false,
    signUp,
  );

  const signUpAgain = expectData(
    "event sign_up again",
    await api.POST("/api/v1/events", {
      body: { name: "sign_up", ids: ["usr_1"], properties: { plan: "pro" }, messageId: "ci-ts-signup-1" },
    }),
    200,
  );
  check(
    "the same messageId answers duplicate with the first event's id",
    signUpAgain.accepted && signUpAgain.duplicate === true && signUpAgain.eventId === signUp.eventId,
    signUpAgain,
  );

  const unknown = expectData(
    "event for unknown ids",
    await api.POST("/api/v1/events", { body: { name: "sign_up", ids: ["usr_nobody", 7] } }),
    200,
  );
  check(
    "an event for unknown ids answers 200 accepted false (unknown_instance)",
    unknown.accepted === false && unknown.reason === "unknown_instance" && unknown.eventId === undefined,
    unknown,
  );

  // --- read the instance back -----------------------------------------------------------------
  const adaRead = expectData(
    "read ada",
    await api.GET("/api/v1/models/{model}/instances/{id}", { params: { path: { model: "customer", id: "42" } } }),
    200,
  );
  check(
    "GET instance by id \"42\" returns ada with her ids, displayName and merged properties",
    adaRead.instanceId === ada.instanceId &&
      adaRead.displayName === "Ada" &&
      adaRead.ids.includes("usr_1") &&
      adaRead.ids.includes("42") &&
      adaRead.properties["email"] === "ada@example.com" &&
      adaRead.properties["plan"] === "pro" &&
      !Number.isNaN(Date.parse(adaRead.createdAt)),
    adaRead,
  );

  const events = expectData(
    "list ada's events",
    await api.GET("/api/v1/models/{model}/instances/{id}/events", {
      params: { path: { model: "customer", id: "usr_1" }, query: { limit: 10 } },
    }),
    200,
  );
  const names = events.events.map((e) => e.name);
  check(
    "ada's events: one sign_up (deduplicated) and an onFunctionaryIdentify per identify, newest first",
    names[0] === "sign_up" &&
      names.filter((n) => n === "sign_up").length === 1 &&
      names.filter((n) => n === "onFunctionaryIdentify").length === 2,
    names,
  );

  const page = expectData(
    "list customers",
    await api.GET("/api/v1/models/{model}/instances", { params: { path: { model: "customer" }, query: { limit: 1 } } }),
    200,
  );
  check(
    "listing customers with limit 1 gives one instance and a nextCursor",
    page.instances.length === 1 && typeof page.nextCursor === "string",
    page,
  );

  expectError(
    "GET an unknown instance",
    await api.GET("/api/v1/models/{model}/instances/{id}", { params: { path: { model: "customer", id: "usr_nobody" } } }),
    404,
    "instance_not_found",
  );

  // --- typed errors ---------------------------------------------------------------------------
  const conflict = expectError(
    "identify with the ids of two instances",
    await api.POST("/api/v1/identify", { body: { model: "customer", ids: ["usr_1", "usr_2"] } }),
    409,
    "ids_conflict",
  );
  check(
    "the conflict names which id belongs to which instance",
    conflict.error.details.some((d) => d.id === "usr_1" && d.instanceId === ada.instanceId) &&
      conflict.error.details.some((d) => d.id === "usr_2" && d.instanceId === grace.instanceId),
    conflict.error.details,
  );

  expectError(
    "identify an undeclared model",
    await api.POST("/api/v1/identify", { body: { model: "planet", ids: ["earth"] } }),
    422,
    "unknown_model",
  );

  const junk = expectError(
    "identify with the junk id \"null\"",
    await api.POST("/api/v1/identify", { body: { model: "customer", ids: ["usr_3", "null"], properties: { email: "x@example.com" } } }),
    422,
    "invalid_id",
  );
  check("the junk id is pointed at (/ids/1)", junk.error.details.some((d) => d.pointer === "/ids/1"), junk.error.details);

  // openapi-fetch infers the type of its options, so TypeScript does not flag an unknown field
  // written inline in the body; the server refuses it instead of dropping the link silently.
  const typo = expectError(
    "identify with the unknown field childID (a typo of childIds)",
    await api.POST("/api/v1/identify", { body: { model: "customer", ids: ["usr_1"], childID: ["usr_2"] } }),
    422,
    "invalid_request",
  );
  check("the refusal names the unknown field", typo.error.message.includes("childID"), typo.error);

  // --- batch: a discriminated union of items, a union of results -------------------------------
  const batch = expectData(
    "batch",
    await api.POST("/api/v1/batch", {
      body: {
        batch: [
          { type: "identify", model: "customer", ids: ["usr_4"], properties: { email: "linus@example.com" }, parentIds: ["org_1"] },
          { type: "event", name: "sign_up", ids: ["usr_4"] },
          { type: "identify", model: "planet", ids: ["mars"] },
        ],
      },
    }),
    200,
  );
  const [first, second, third] = batch.results;
  check(
    "batch answers one result per item, each with its own status (200, 200, 422)",
    batch.results.length === 3 &&
      first !== undefined && "created" in first && first.created &&
      second !== undefined && "accepted" in second && second.accepted &&
      third !== undefined && "error" in third && third.statusCode === 422 && third.error.code === "unknown_model",
    batch.results,
  );
}

// Never called: each line must be refused by `tsc`. If the generated types stopped being precise
// (paths, bodies or ids typed as `any`), the `@ts-expect-error` comments would be unused and `tsc` fails.
export async function typeChecks(api: ReturnType<typeof createClient<paths>>): Promise<void> {
  // @ts-expect-error: no such path
  await api.POST("/api/v1/identfy", { body: { model: "customer", ids: ["a"] } });
  // @ts-expect-error: `ids` is required
  await api.POST("/api/v1/identify", { body: { model: "customer" } });
  // @ts-expect-error: a typo of `childIds` is not a field of IdentifyRequest. (Written inline in
  // `api.POST(...)` it would compile: openapi-fetch infers the options type, so TypeScript makes no
  // excess-property check there. The server refuses it with 422, checked in main().)
  const typo: Schemas["IdentifyRequest"] = { model: "customer", ids: ["a"], childID: ["b"] };
  void typo;
  // @ts-expect-error: an id is a string or an integer, never a boolean
  await api.POST("/api/v1/identify", { body: { model: "customer", ids: [true] } });
  // @ts-expect-error: the path parameter `id` is required
  await api.GET("/api/v1/models/{model}/instances/{id}", { params: { path: { model: "customer" } } });
  // @ts-expect-error: scopes are `ingest` | `read`
  await api.POST("/admin/v1/tenants/{slug}/keys", { params: { path: { slug } }, body: { scopes: ["write"] } });
  const { data, error } = await api.POST("/api/v1/identify", { body: { model: "customer", ids: ["a"] } });
  if (data) {
    // @ts-expect-error: IdentifyResult has no `instance` field
    void data.instance;
    const pending: number = data.pending;
    void pending;
  } else {
    const code: string = error.error.code;
    void code;
  }
}

main().then(
  () => console.log(`typescript client: ${passed} checks passed`),
  (err: unknown) => {
    // stdout, like the passed checks, so that the lines keep their order in a CI log
    console.log(err instanceof CheckFailed ? err.message : err);
    console.log(`typescript client: FAILED after ${passed} checks passed`);
    process.exitCode = 1;
  },
);
