// Drives webhookd's Svix-compatible API with the official Svix JavaScript SDK, unmodified:
// only the server URL is webhookd's. A receiver in this process accepts a delivery only if
// the SDK's own `new Webhook(secret).verify(body, headers)` does.
//
//   SVIX_SERVER_URL=http://127.0.0.1:8000 SVIX_TOKEN=<admin key> node drive.cjs
//
// Prints one JSON line of what it checked; exits 1 on the first failure.
"use strict";

const assert = require("node:assert/strict");
const http = require("node:http");
const { Svix, Webhook } = require("svix");

const serverUrl = process.env.SVIX_SERVER_URL;
const token = process.env.SVIX_TOKEN;
// No retries: a 5xx fails the run instead of being retried away.
const svix = new Svix(token, { serverUrl, retryScheduleInMs: [] });
const run = `js-${process.pid}-${Date.now()}`;

/** A receiver: answers 200 only to deliveries `Webhook(secret).verify` accepts. */
function receiver() {
  const state = { secrets: [], verified: [], refused: 0 };
  const server = http.createServer((req, res) => {
    const chunks = [];
    req.on("data", (chunk) => chunks.push(chunk));
    req.on("end", () => {
      const body = Buffer.concat(chunks).toString("utf8");
      for (const secret of state.secrets) {
        try {
          assert.ok(req.headers["svix-signature"], "svix-* headers");
          state.verified.push(new Webhook(secret).verify(body, req.headers));
          res.writeHead(200).end("ok");
          return;
        } catch {
          // another secret, or refused
        }
      }
      state.refused += 1;
      res.writeHead(400).end("signature refused");
    });
  });
  return new Promise((resolve) => {
    server.listen(0, "127.0.0.1", () => {
      state.url = `http://127.0.0.1:${server.address().port}/hook`;
      state.close = () => server.close();
      resolve(state);
    });
  });
}

async function until(check, what, timeoutMs = 10000) {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    const value = await check();
    if (value) return value;
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`timed out waiting for ${what}`);
}

async function rejects(promise, code) {
  try {
    await promise;
  } catch (e) {
    assert.equal(e.code, code, `status ${e.code}: ${JSON.stringify(e.body)}`);
    return e.body;
  }
  throw new Error(`expected HTTP ${code}`);
}

async function main() {
  const checked = [];
  const step = (name) => checked.push(name);
  const rec = await receiver();
  try {
    await svix.health.get();
    step("health.get");

    const uid = `${run}-app`;
    const app = await svix.application.create({ name: "JS app", uid });
    assert.match(app.id, /^tnt_/);
    assert.equal((await svix.application.get(uid)).id, app.id);
    assert.equal((await svix.application.getOrCreate({ name: "x", uid })).id, app.id);
    assert.equal((await svix.application.patch(app.id, { name: "JS 2" })).name, "JS 2");
    assert.equal((await svix.application.update(uid, { name: "JS 3", uid })).name, "JS 3");
    const apps = await svix.application.list({ limit: 250 });
    assert.ok(apps.data.some((a) => a.id === app.id));
    assert.equal(typeof apps.done, "boolean");
    step("application.*");

    const typeName = `js.signup.${process.pid}`;
    await svix.eventType.create({ name: typeName, description: "signed up" });
    assert.equal((await svix.eventType.get(typeName)).description, "signed up");
    await svix.eventType.patch(typeName, { description: "patched" });
    await svix.eventType.update(typeName, { description: "put" });
    assert.ok((await svix.eventType.list({ limit: 250 })).data.some((t) => t.name === typeName));
    await svix.eventType.delete(typeName);
    assert.ok((await svix.eventType.get(typeName)).archived);
    step("eventType.*");

    const ep = await svix.endpoint.create(app.id, {
      url: rec.url,
      uid: "js-ep",
      filterTypes: [typeName],
      metadata: { team: "js" },
      description: "JS endpoint",
    });
    assert.deepEqual(ep.filterTypes, [typeName]);
    const secret = (await svix.endpoint.getSecret(app.id, "js-ep")).key;
    assert.match(secret, /^whsec_/);
    rec.secrets = [secret];
    assert.equal((await svix.endpoint.get(app.id, ep.id)).uid, "js-ep");
    assert.equal((await svix.endpoint.patch(app.id, "js-ep", { description: "p" })).description, "p");
    assert.deepEqual((await svix.endpoint.list(app.id)).data.map((e) => e.id), [ep.id]);
    await svix.endpoint.updateHeaders(app.id, ep.id, { headers: { "X-Team": "js" } });
    await svix.endpoint.patchHeaders(app.id, ep.id, { headers: { "X-Env": "test" } });
    const headers = await svix.endpoint.getHeaders(app.id, ep.id);
    assert.deepEqual(Object.keys(headers.headers).sort(), ["X-Env", "X-Team"]);
    step("endpoint.*");

    const msg = await svix.message.create(app.id, {
      eventType: typeName,
      eventId: `${run}-1`,
      payload: { user: 1 },
    });
    await until(() => rec.verified.length >= 1, "a verified delivery");
    assert.deepEqual(rec.verified[0], { user: 1 });
    const again = await svix.message.create(app.id, {
      eventType: typeName,
      eventId: `${run}-1`,
      payload: { user: 1 },
    });
    assert.equal(again.id, msg.id);
    assert.equal((await svix.message.get(app.id, `${run}-1`)).id, msg.id);
    assert.ok((await svix.message.list(app.id)).data.some((m) => m.id === msg.id));
    step("message.*");

    const attempts = await until(async () => {
      const page = await svix.messageAttempt.listByMsg(app.id, msg.id);
      return page.data.length ? page.data : null;
    }, "an attempt");
    assert.equal(attempts[0].responseStatusCode, 200);
    const byEndpoint = await svix.messageAttempt.listByEndpoint(app.id, "js-ep");
    assert.equal(byEndpoint.data[0].msgId, msg.id);
    step("messageAttempt.*");

    await svix.endpoint.rotateSecret(app.id, ep.id, {});
    const rotated = (await svix.endpoint.getSecret(app.id, ep.id)).key;
    assert.notEqual(rotated, secret);
    rec.secrets = [rotated];
    await svix.message.create(app.id, { eventType: typeName, payload: { user: 2 } });
    await until(() => rec.verified.length >= 2, "a delivery signed with the new secret");
    step("endpoint.rotateSecret");

    const portal = await svix.authentication.appPortalAccess(app.id, {});
    assert.ok(portal.url.includes(portal.token));
    step("authentication.appPortalAccess");

    const missing = await rejects(svix.application.get(`${run}-nope`), 404);
    assert.equal(missing.code, "not_found");
    const invalid = await rejects(svix.endpoint.create(app.id, { url: "ftp://x" }), 422);
    assert.ok(Array.isArray(invalid.detail) && invalid.detail[0].loc);
    await rejects(new Svix("wrong", { serverUrl, retryScheduleInMs: [] }).application.list(), 401);
    step("errors");

    await svix.endpoint.delete(app.id, ep.id);
    await svix.application.delete(app.id);
    await rejects(svix.application.get(app.id), 404);
    step("delete");

    assert.equal(rec.refused, 0, "every delivery verified");
    console.log(JSON.stringify({ ok: true, checked, verified: rec.verified.length }));
  } finally {
    rec.close();
  }
}

main().catch((e) => {
  console.error(e && e.stack ? e.stack : e);
  process.exit(1);
});
