/// <reference path="../pb_data/types.d.ts" />
// Superusers only from inside the container (#22 item 7): the network that reaches PocketBase (the engine's
// subnetwork on GCE, through tlsproxy.py; the private network elsewhere) gets no superuser sign-in, no admin UI
// (`/_/`), no route on the `_superusers` collection and no request made with a superuser's token. The platform
// never needs one over the network: the superuser is upserted by the CLI at every start (entrypoint.sh) and the
// engine has its own account (engine_schema.pb.js). An operator reaches 127.0.0.1:8090 from inside the container.
//
// The peer address, never a forwarded header: e.remoteIP() is "the IP address of the client connection,
// without taking into account the trusted proxy headers" (pocketbase.io/jsvm/interfaces/core.RequestEvent.html).
// 127.0.0.1 exactly: tlsproxy.py forwards the network's connections from 127.0.0.2.
// Each handler holds its own helpers: PocketBase runs a handler in a context of its own, without the file's
// other top-level declarations (pocketbase.io/docs/js-overview, "Caveats and limitations": "Handlers scope").

// Any successful authentication in the `_superusers` collection, whatever the method (password, OTP,
// OAuth2, refresh, impersonation): "triggered on each successful API record authentication request (sign-in,
// token refresh, etc.)" (pocketbase.io/docs/js-event-hooks, onRecordAuthRequest). Throwing refuses the token.
onRecordAuthRequest((e) => {
  const ip = e.remoteIP();
  if (ip !== "127.0.0.1" && ip !== "::1" && ip !== "::ffff:127.0.0.1") {
    throw new ForbiddenError("superusers sign in only from inside the PocketBase container");
  }
  e.next();
}, "_superusers");

// Every routed request: "global middlewares that are executed along the handler middlewares after a matching
// route is found" (pocketbase.io/jsvm/functions/routerUse.html), after PocketBase's own that loads the token.
routerUse((e) => {
  const ip = e.remoteIP();
  if (ip === "127.0.0.1" || ip === "::1" || ip === "::ffff:127.0.0.1") {
    return e.next();
  }
  const path = (e.request.url.path || "").toLowerCase();
  let superusers = false;
  const named = e.request.pathValue("collection"); // `/api/collections/{collection}/...`, by name or id
  if (named) {
    try {
      superusers = e.app.findCachedCollectionByNameOrId(named).name === "_superusers";
    } catch (err) {
      superusers = false; // no such collection: PocketBase answers 404 itself
    }
  }
  if (superusers || path === "/_" || path.indexOf("/_/") === 0 || path.indexOf("/api/admins") === 0
      || e.hasSuperuserAuth()) {
    throw new ForbiddenError("superuser routes are served only inside the PocketBase container");
  }
  return e.next();
});
