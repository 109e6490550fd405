"""Example Case-keeper webhook receiver in Python, verifying with the PyPI package `standardwebhooks`.

It verifies each request against the raw body, drops what it has seen already (by webhook-id) and events older
than the version of the case it holds, and writes one JSON line per verified event. Standard library otherwise.

Environment:
  PORT             port to listen on, on 127.0.0.1 (required)
  WEBHOOK_SECRET   the endpoint's signing secret, whsec_..., or for an Ed25519 endpoint its public key, whpk_...;
                   several, space-separated, while you roll out a rotation
  EVENTS_FILE      where to append the JSON lines (default: standard output)

A real receiver keeps the webhook-ids and case versions in its database, written in the same transaction as the
change the event causes; the set and dict below stand in for that.
"""

import base64
import json
import os
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from standardwebhooks.webhooks import Webhook, WebhookVerificationError

MAX_BODY = 1 << 20


def fail(msg):
    print(f"receiver: {msg}", file=sys.stderr)
    sys.exit(1)


port = os.environ.get("PORT", "")
if not port.isdigit():
    fail("PORT is not set")
secrets = os.environ.get("WEBHOOK_SECRET", "").split()
if not secrets:
    fail("WEBHOOK_SECRET is not set")


class Ed25519Webhook:
    """Verifies "v1a" signatures (Standard Webhooks' asymmetric scheme) with a whpk_ public key, the way Webhook
    verifies "v1" ones; the PyPI package does not do v1a (yet)."""

    def __init__(self, whpk):
        raw = base64.b64decode(whpk[len("whpk_"):])
        if len(raw) != 32:
            fail("WEBHOOK_SECRET: a whpk_ key is base64 of 32 bytes")
        self.key = Ed25519PublicKey.from_public_bytes(raw)

    def verify(self, body, headers):
        msg_id, ts, sigs = headers.get("webhook-id"), headers.get("webhook-timestamp"), headers.get("webhook-signature")
        if not msg_id or not ts or not sigs:
            raise WebhookVerificationError("Missing required headers")
        if not ts.isdigit() or len(ts) > 12 or abs(time.time() - int(ts)) > 5 * 60:
            raise WebhookVerificationError("Message timestamp too old or too new")
        content = f"{msg_id}.{ts}.".encode() + (body if isinstance(body, bytes) else body.encode())
        for sig in sigs.split(" "):
            version, _, value = sig.partition(",")
            if version != "v1a" or not value:
                continue
            try:
                self.key.verify(base64.b64decode(value), content)
                return json.loads(body)
            except (InvalidSignature, ValueError):
                continue
        raise WebhookVerificationError("No matching signature found")


verifiers = [Ed25519Webhook(s) if s.startswith("whpk_") else Webhook(s) for s in secrets]
events_file = os.environ.get("EVENTS_FILE")

lock = threading.Lock()
seen = set()  # webhook-ids already handled
versions = {}  # case id -> newest version applied


def verify(body, headers):
    """Returns the parsed body when any of our secrets signed it; raises otherwise (missing headers, a timestamp
    more than 5 minutes away, no matching signature)."""
    last = None
    for wh in verifiers:
        try:
            return wh.verify(body, headers)
        except WebhookVerificationError as err:
            last = err
        except (ValueError, TypeError) as err:
            # The library raises these on malformed headers (a signature without a comma, bad base64).
            last = WebhookVerificationError(f"malformed signature headers: {type(err).__name__}")
    raise last


def record(line):
    text = json.dumps(line) + "\n"
    if events_file:
        with open(events_file, "a", encoding="utf-8") as f:
            f.write(text)
    else:
        sys.stdout.write(text)
        sys.stdout.flush()


def handle(body, headers):
    try:
        payload = verify(body, headers)
    except WebhookVerificationError as err:
        return 401, str(err)
    webhook_id = headers["webhook-id"]
    data = payload.get("data") if isinstance(payload, dict) else None
    if not isinstance(data, dict) or not payload.get("type"):
        return 400, "not a full or thin payload"
    with lock:
        if webhook_id in seen:
            return 204, ""  # a retry of something already handled: 2xx, or it comes again
        # Thin payloads carry case_id and case_version (a number); full ones are the case itself, whose int64
        # version is a JSON string (protobuf's JSON mapping).
        thin = "event_id" in data
        case_id = data["case_id"] if thin else data["id"]
        version = int(data["case_version"] if thin else data["version"])
        applied = version > versions.get(case_id, 0)
        if applied:
            versions[case_id] = version
            # A thin receiver fetches the case here: GET data["url"] with a token of its tenant (docs/webhooks.md).
        record({"webhook_id": webhook_id, "type": payload["type"], "case_id": case_id,
                "case_version": version, "applied": applied})
        seen.add(webhook_id)
    return 204, ""


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_GET(self):
        if self.path == "/healthz":
            self.reply(200, "ok")
        else:
            self.reply(404, "")

    def do_POST(self):
        if self.path != "/webhooks":
            self.reply(404, "")
            return
        length = int(self.headers.get("Content-Length") or 0)
        if length > MAX_BODY:
            self.reply(413, "")
            self.close_connection = True
            return
        # Verify the exact bytes received, before any parsing.
        body = self.rfile.read(length)
        headers = {k.lower(): v for k, v in self.headers.items()}
        try:
            status, text = handle(body, headers)
        except OSError as err:
            print(f"receiver: storing the event failed: {err}", file=sys.stderr)
            status, text = 503, "could not store the event"  # not stored: 5xx, so that it comes again
        if status >= 400:
            print(f"receiver: webhook refused: {status} {text}", file=sys.stderr)
        self.reply(status, text)

    def reply(self, status, text):
        data = text.encode()
        self.send_response(status)
        if status != 204:
            self.send_header("Content-Type", "text/plain; charset=utf-8")
            self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        if status != 204:
            self.wfile.write(data)

    def log_message(self, fmt, *args):
        pass  # one line per request is noise; refusals are printed above


server = ThreadingHTTPServer(("127.0.0.1", int(port)), Handler)
print(f"receiver listening on 127.0.0.1:{port}", file=sys.stderr, flush=True)
try:
    server.serve_forever()
except KeyboardInterrupt:
    pass
