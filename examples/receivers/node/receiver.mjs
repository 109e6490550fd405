// Example Case-keeper webhook receiver in Node.js, verifying with the npm package `standardwebhooks`.
//
// It verifies each request against the raw body, drops what it has seen already (by webhook-id) and events older
// than the version of the case it holds, and writes one JSON line per verified event.
//
// Environment:
//   PORT             port to listen on, on 127.0.0.1 (required)
//   WEBHOOK_SECRET   the endpoint's signing secret, whsec_…, or for an Ed25519 endpoint its public key, whpk_…;
//                    several, space-separated, while you roll out a rotation
//   EVENTS_FILE      where to append the JSON lines (default: standard output)
//
// A real receiver keeps the webhook-ids and case versions in its database, written in the same transaction as the
// change the event causes; the Map and Set below stand in for that.
import { createPublicKey, verify as verifyEd25519 } from "node:crypto";
import { appendFileSync } from "node:fs";
import { createServer } from "node:http";
import { Webhook, WebhookVerificationError } from "standardwebhooks";

const port = Number(process.env.PORT);
if (!Number.isInteger(port) || port <= 0) {
  console.error("receiver: PORT is not set");
  process.exit(1);
}
const secrets = (process.env.WEBHOOK_SECRET ?? "").split(/\s+/).filter(Boolean);
if (secrets.length === 0) {
  console.error("receiver: WEBHOOK_SECRET is not set");
  process.exit(1);
}
// Ed25519Webhook verifies "v1a" signatures (Standard Webhooks' asymmetric scheme) with a whpk_ public key, the
// same way Webhook verifies "v1" ones; the npm package does not do v1a (yet).
class Ed25519Webhook {
  constructor(whpk) {
    const raw = Buffer.from(whpk.slice("whpk_".length), "base64");
    if (raw.length !== 32) throw new Error("WEBHOOK_SECRET: a whpk_ key is base64 of 32 bytes");
    // The SubjectPublicKeyInfo prefix of an Ed25519 key, followed by the raw key.
    this.key = createPublicKey({ key: Buffer.concat([Buffer.from("302a300506032b6570032100", "hex"), raw]), format: "der", type: "spki" });
  }

  verify(body, headers) {
    const id = headers["webhook-id"], ts = headers["webhook-timestamp"], sigs = headers["webhook-signature"];
    if (!id || !ts || !sigs) throw new WebhookVerificationError("Missing required headers");
    if (!/^\d{1,12}$/.test(ts) || Math.abs(Date.now() / 1000 - Number(ts)) > 5 * 60) {
      throw new WebhookVerificationError("Message timestamp too old or too new");
    }
    const content = Buffer.from(`${id}.${ts}.${body}`);
    for (const sig of sigs.split(" ")) {
      const [version, value] = sig.split(",", 2);
      if (version === "v1a" && value && verifyEd25519(null, content, this.key, Buffer.from(value, "base64"))) {
        return JSON.parse(body);
      }
    }
    throw new WebhookVerificationError("No matching signature found");
  }
}

const verifiers = secrets.map((s) => (s.startsWith("whpk_") ? new Ed25519Webhook(s) : new Webhook(s)));
const eventsFile = process.env.EVENTS_FILE;
const maxBody = 1 << 20;

const seen = new Set(); // webhook-ids already handled
const versions = new Map(); // case id → newest version applied

// verify returns the parsed body when any of our secrets signed it; it throws WebhookVerificationError otherwise
// (missing headers, a timestamp more than 5 minutes away, no matching signature).
function verify(body, headers) {
  let last;
  for (const wh of verifiers) {
    try {
      return wh.verify(body, headers);
    } catch (err) {
      last = err;
    }
  }
  throw last;
}

function record(line) {
  const text = JSON.stringify(line) + "\n";
  if (eventsFile) appendFileSync(eventsFile, text);
  else process.stdout.write(text);
}

function handle(body, headers) {
  let payload;
  try {
    payload = verify(body, headers);
  } catch (err) {
    // WebhookVerificationError, or a malformed header the library choked on: either way, not from us.
    return [401, err instanceof WebhookVerificationError ? err.message : "invalid signature headers"];
  }
  const id = headers["webhook-id"];
  if (seen.has(id)) return [204, ""]; // a retry of something already handled: 2xx, or it comes again
  const data = payload?.data;
  if (!payload?.type || !data) return [400, "not a full or thin payload"];
  // Thin payloads carry case_id and case_version (a number); full ones are the case itself, whose int64 version
  // is a JSON string (protobuf's JSON mapping).
  const thin = data.event_id !== undefined;
  const caseId = thin ? data.case_id : data.id;
  const version = Number(thin ? data.case_version : data.version);
  const applied = version > (versions.get(caseId) ?? 0);
  if (applied) {
    versions.set(caseId, version);
    // A thin receiver fetches the case here: GET data.url with a token of its tenant (docs/webhooks.md).
  }
  record({ webhook_id: id, type: payload.type, case_id: caseId, case_version: version, applied });
  seen.add(id);
  return [204, ""];
}

const server = createServer((req, res) => {
  if (req.method === "GET" && req.url === "/healthz") {
    res.end("ok\n");
    return;
  }
  if (req.method !== "POST" || req.url !== "/webhooks") {
    res.writeHead(404).end();
    return;
  }
  const chunks = [];
  let size = 0;
  req.on("data", (c) => {
    size += c.length;
    if (size > maxBody) {
      res.writeHead(413).end();
      req.destroy();
      return;
    }
    chunks.push(c);
  });
  req.on("end", () => {
    if (res.writableEnded) return;
    // Verify the exact bytes received, before any parsing.
    const body = Buffer.concat(chunks);
    let status, text;
    try {
      [status, text] = handle(body, req.headers);
    } catch (err) {
      console.error("receiver: storing the event failed:", err);
      [status, text] = [503, "could not store the event"]; // not stored: 5xx, so that it comes again
    }
    if (status >= 400) console.error(`receiver: webhook refused: ${status} ${text}`);
    res.writeHead(status, { "content-type": "text/plain" }).end(text);
  });
});

server.listen(port, "127.0.0.1", () => console.error(`receiver listening on 127.0.0.1:${port}`));
// On SIGINT/SIGTERM: stop accepting, let requests in flight finish, close keep-alive connections as they go idle
// (a sender with more to deliver would otherwise keep one busy), and cut whatever is left after 10 s.
for (const sig of ["SIGINT", "SIGTERM"]) {
  process.on(sig, () => {
    server.close(() => process.exit(0));
    setInterval(() => server.closeIdleConnections(), 100).unref();
    setTimeout(() => server.closeAllConnections(), 10_000).unref();
  });
}
