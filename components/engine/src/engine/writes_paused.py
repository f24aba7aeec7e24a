"""Whether PocketBase refuses the engine's writes because a migration paused them (#26, PG.md "Writes paused").

`python -m infra migrate-db --step cutover` makes PocketBase itself refuse the engine's account every create and
update (each engine collection's createRule and updateRule superusers-only, engine_schema.pb.js); so no engine
instance, however many serve and whatever they cached, can store a write the final sync would miss. The engine
sees a refused write as a storage error; before answering it, the API asks this probe whether that is the pause,
and answers 503 `writes_paused` with Retry-After instead of "storage unavailable".

The question is a create PocketBase refuses either way, so it never writes: an empty body to order_transitions.
With the collection's createRule null PocketBase answers 403 "Only superusers can perform this action." before it
reads the body; with the engine's rule it answers 400, the required fields being blank (pocketbase/pocketbase
apis/record_crud.go, recordCreate: `if !hasSuperuserAuth && collection.CreateRule == nil { return
e.ForbiddenError("Only superusers can perform this action.", nil) }`, then the form's validation). One question at
a time, its answer kept `TTL_S`, and `TIMEOUT_S` at most: a PocketBase that does not answer is not paused.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any, cast

import httpx

from engine.adapters.pocketbase import tls_context

REFUSED = "Only superusers can perform this action."
RETRY_AFTER_S = 5
"""What a paused write's answer tells the client to wait: the cut-over's pause lasts seconds (docs/runbooks/
migrate-db.md); a retry with the same Idempotency-Key creates the order once, on whichever store serves then."""


class WritesPausedProbe:
    TTL_S = 1.0
    TIMEOUT_S = 1.0
    COLLECTION = "order_transitions"

    def __init__(self, url: str, accounts: str, email: str, password: str, ca_cert: str | None = None) -> None:
        self._http = httpx.AsyncClient(base_url=url.rstrip("/"), timeout=self.TIMEOUT_S,
                                       verify=tls_context(ca_cert))
        self._accounts, self._email, self._password = accounts, email, password
        self._token: str | None = None
        self._known: tuple[float, bool] | None = None
        self._asking: asyncio.Future[bool] | None = None

    async def close(self) -> None:
        await self._http.aclose()

    async def paused(self) -> bool:
        known = self._known
        if known is not None and time.monotonic() - known[0] < self.TTL_S:
            return known[1]
        if self._asking is None or self._asking.done():
            self._asking = asyncio.ensure_future(self._ask())
        return await asyncio.shield(self._asking)

    async def _ask(self) -> bool:
        try:
            async with asyncio.timeout(self.TIMEOUT_S):
                answer = await self._create_nothing()
                if answer.status_code == 401:  # no token yet, or one PocketBase no longer accepts
                    await self._sign_in()
                    answer = await self._create_nothing()
            body: Any = answer.json() if answer.status_code == 403 else None
            paused = isinstance(body, dict) and cast(dict[str, Any], body).get("message") == REFUSED
        except (httpx.HTTPError, TimeoutError, ValueError):
            paused = False
        self._known = (time.monotonic(), paused)
        return paused

    async def _create_nothing(self) -> httpx.Response:
        return await self._http.post(f"/api/collections/{self.COLLECTION}/records", json={},
                                     headers={"Authorization": self._token or ""})

    async def _sign_in(self) -> None:
        response = await self._http.post(f"/api/collections/{self._accounts}/auth-with-password",
                                         json={"identity": self._email, "password": self._password})
        token: Any = response.json().get("token") if response.status_code == 200 else None
        self._token = token if isinstance(token, str) else None
