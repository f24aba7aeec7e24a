/// <reference path="../pb_data/types.d.ts" />
// The Commission Engine's schema and account, applied by PocketBase itself at every start (#11.2): the
// engine signs in with an account of its own and never holds the superuser's credentials, and no engine
// instance migrates. engine_schema.json is generated from the engine's code (engine/schema.py,
// `tools/dev.py generate`; a test fails when it drifts).
//
// onBootstrap runs after the database and the settings are loaded (after e.next()), before `serve` listens,
// and also for `pocketbase superuser upsert`, which the entrypoint runs first (pocketbase.io/docs/js-event-hooks).
// A failure here stops PocketBase: it never serves the engine a half-applied schema.
onBootstrap((e) => {
  e.next();
  // Handlers run in their own goja runtimes and see no variable of this file: everything is read here.
  const schema = JSON.parse(toString($os.readFile(`${__hooks}/engine_schema.json`)));
  // ImportCollections in one transaction; deleteMissing=false keeps what the document no longer names (a
  // column an engine still serving during a rollout reads). Existing collections match by name, their
  // fields by id (type + crc32(name), as PocketBase gave them when the engine created them over REST).
  e.app.importCollectionsByMarshaledJSON(JSON.stringify(schema.collections), false);

  // A status change is up to three writes in one transaction of the batch API (the transition, the order, the
  // affiliate's summary version), which PocketBase ships disabled.
  const settings = e.app.settings();
  if (!settings.batch.enabled || settings.batch.maxRequests < 3) {
    settings.batch.enabled = true;
    if (settings.batch.maxRequests < 3) {
      settings.batch.maxRequests = 50;
    }
    e.app.save(settings);
  }

  // Exactly one account, of the latest start's email and password: a rotated password applies at the next
  // start, and an unchanged one is not set again (setting it would renew the account's token key and
  // sign the engine out).
  const email = $os.getenv("PB_ENGINE_EMAIL");
  const password = $os.getenv("PB_ENGINE_PASSWORD");
  if (!email || !password) {
    throw new Error("PB_ENGINE_EMAIL and PB_ENGINE_PASSWORD are required: the engine's PocketBase account");
  }
  let account = null;
  for (const record of e.app.findAllRecords(schema.accounts)) {
    if (record.email() === email) {
      account = record;
    } else {
      e.app.delete(record);
    }
  }
  if (account === null) {
    account = new Record(e.app.findCollectionByNameOrId(schema.accounts));
    account.setEmail(email);
  } else if (account.validatePassword(password)) {
    return;
  }
  account.setPassword(password);
  account.setVerified(true);
  e.app.save(account);
});

// The engine's collections' rules are the image's, whoever updates them over REST: an engine of a release
// before #11.2 (a revision serving beside the canary, or one rolled back to) still migrates with the
// superuser as it starts, and would lock them to superusers (null rules), refusing this release's account.
// Its migration succeeds (superusers pass any rule) and the rules stay; its fields are the same.
onCollectionUpdateRequest((e) => {
  const schema = JSON.parse(toString($os.readFile(`${__hooks}/engine_schema.json`)));
  const declared = schema.collections.find((c) => c.name === e.collection.name);
  if (declared && declared.type !== "auth") {
    for (const rule of ["listRule", "viewRule", "createRule", "updateRule", "deleteRule"]) {
      if (rule in declared) {
        e.collection[rule] = declared[rule];
      }
    }
    // The engine's writes paused for its move to PostgreSQL (`python -m infra migrate-db --step cutover`, #26): a
    // superuser (this route is theirs alone) who says so with this header gets the create and update rules of a
    // base collection superusers-only, so PocketBase refuses the engine's account every write (403), alone or in
    // a batch; reads go on. An update without the header (the rollback) or the next start (onBootstrap imports
    // the declared rules) lifts it. An engine of an older release never sends it.
    // requestInfo's headers: lower case, "-" as "_" (pocketbase.io/docs/js-routing, "e.requestInfo()").
    if (declared.type !== "view" && e.requestInfo().headers["x_engine_writes"] === "paused") {
      e.collection.createRule = null;
      e.collection.updateRule = null;
    }
  }
  return e.next();
});

// PocketBase answers a request whose token it no longer accepts (expired, or of a rotated password) as a
// guest's, and a rule a request does not satisfy is a filter, not a refusal: "the API will return 200 empty
// items response in case a request doesn't satisfy a listRule, 400 for unsatisfied createRule and 404 for
// unsatisfied viewRule, updateRule and deleteRule" (pocketbase.io/docs/api-rules-and-filters). The engine
// would take that for "no records". So records and batches need an authenticated account: without one,
// 401, on which the engine signs in again. Registered with routerUse, after PocketBase's own middlewares
// (the auth token's among them, which have negative priorities), before any route's handler.
routerUse((e) => {
  const path = e.request.url.path;
  if (!e.auth && (path === "/api/batch" || /^\/api\/collections\/[^/]+\/records(\/|$)/.test(path))) {
    throw new UnauthorizedError("The request requires a valid account token.");
  }
  return e.next();
});

// The engine's account signs in with its password (and refreshes its token), nothing else: PocketBase lets
// anyone ask for a password reset or a verification of any auth record (204 whether it exists or not,
// pocketbase.io/docs/api-records), which would mail a reset link for the account that holds every order once
// SMTP is set up; OTP, OAuth2 and e-mail changes are not the engine's either. Superusers keep every route.
routerUse((e) => {
  const found = /^\/api\/collections\/engine_accounts\/([^/]+)/.exec(e.request.url.path);
  const allowed = ["auth-with-password", "auth-refresh", "auth-methods", "records"];
  if (found && !allowed.includes(found[1]) && !(e.auth && e.auth.isSuperuser())) {
    throw new NotFoundError();
  }
  return e.next();
});
