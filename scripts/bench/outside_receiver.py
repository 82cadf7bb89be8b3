"""The webhook consumer of the outside-harness scenario, in a process of its own.

    python3 scripts/bench/outside_receiver.py --port 19300

A single-threaded aiohttp server, as an application team would write one: every delivery's
signature is checked with the PyPI `standardwebhooks` verifier (secret from LLM_WEBHOOK_SECRET)
before the body is trusted, and the first arrival of each job's webhook is recorded on the
machine's monotonic clock (time.monotonic(), CLOCK_MONOTONIC, which the client shares).
GET /_stats answers the counts; GET /_arrivals answers every first arrival by job id.
"""

import argparse
import json
import os
import time

from aiohttp import web
from standardwebhooks.webhooks import Webhook

ARRIVALS = web.AppKey("arrivals", dict)
COUNTS = web.AppKey("counts", dict)
VERIFIER = web.AppKey("verifier", Webhook)


async def receive(request: web.Request) -> web.Response:
    now = time.monotonic()
    body = await request.read()
    counts = request.app[COUNTS]
    headers = {
        name: request.headers.get(name, "")
        for name in ("webhook-id", "webhook-timestamp", "webhook-signature")
    }
    try:
        payload = request.app[VERIFIER].verify(body, headers)
    except Exception:  # the package raises WebhookVerificationError, or a JSON error
        counts["rejected"] += 1
        return web.Response(status=401)
    job_id = payload.get("job_id") if isinstance(payload, dict) else None
    if not isinstance(job_id, str):
        counts["rejected"] += 1
        return web.Response(status=400)
    arrivals = request.app[ARRIVALS]
    if job_id in arrivals:
        counts["duplicates"] += 1
    else:
        arrivals[job_id] = now
        if payload.get("status") != "completed":
            counts["not_completed"] += 1
            if len(counts["failures"]) < 5:
                counts["failures"].append(f"{payload.get('status')}: {payload.get('error_message')}")
    return web.Response(status=204)


async def stats(request: web.Request) -> web.Response:
    counts = request.app[COUNTS]
    return web.json_response({"received": len(request.app[ARRIVALS]), **counts})


async def arrivals(request: web.Request) -> web.Response:
    return web.Response(text=json.dumps(request.app[ARRIVALS]), content_type="application/json")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    secret = os.environ.get("LLM_WEBHOOK_SECRET")
    if not secret:
        raise SystemExit("LLM_WEBHOOK_SECRET is not set")
    app = web.Application(client_max_size=8 * 1024 * 1024)
    app[VERIFIER] = Webhook(secret)
    app[ARRIVALS] = {}
    app[COUNTS] = {"rejected": 0, "duplicates": 0, "not_completed": 0, "failures": []}
    app.router.add_get("/_stats", stats)
    app.router.add_get("/_arrivals", arrivals)
    app.router.add_post("/{tail:.*}", receive)
    web.run_app(app, host=args.host, port=args.port, access_log=None, print=None, backlog=4096)


if __name__ == "__main__":
    main()
