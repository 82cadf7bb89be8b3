"""The client of the outside-harness scenario: an aiohttp client, as an application team would
write one, not llmflow-loadgen's fast path.

    python3 scripts/bench/outside_client.py --api URL --receiver URL --jobs 10000 \
        --concurrency 200 --out run.json

Submits `bench_pipeline` jobs (score 80: both LLM steps) with at most --concurrency requests in
flight, then waits until the receiver (scripts/bench/outside_receiver.py, its own process) has
every accepted job's webhook, or nothing new arrived for --idle-timeout seconds. Writes one JSON
object with the keys llmflow-loadgen's `run` writes, so `llmflow-loadgen report` can merge it.
The API key comes from LLM_MICROSERVICE_API_KEY. Times are time.monotonic() (CLOCK_MONOTONIC),
shared with the receiver.
"""

import argparse
import asyncio
import json
import math
import os
import sys
import time

import aiohttp

TEXT = (
    "Ship the quarterly report by Friday, and book the review meeting with finance "
    "for Monday morning so the numbers can be signed off before the board call."
)


def quantile(sorted_values, q):
    """Nearest-rank quantile of sorted values (0 when empty), as llmflow-loadgen computes it."""
    if not sorted_values:
        return 0.0
    rank = math.ceil(q * len(sorted_values))
    return sorted_values[min(max(rank, 1), len(sorted_values)) - 1]


def summary(values):
    values = sorted(values)
    return quantile(values, 0.5), quantile(values, 0.99), (values[-1] if values else 0.0)


async def submit_all(args, body):
    """Returns (accepted {job_id: sent}, latencies ms, errors, elapsed s)."""
    accepted, latencies, errors = {}, [], 0
    headers = {"X-API-Key": os.environ["LLM_MICROSERVICE_API_KEY"]}
    url = args.api.rstrip("/") + "/api/v1/workflow"
    connector = aiohttp.TCPConnector(limit=args.concurrency)
    timeout = aiohttp.ClientTimeout(total=60)
    next_index = 0
    started = time.monotonic()

    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:

        async def one_at_a_time():
            nonlocal next_index, errors
            while next_index < args.jobs:
                next_index += 1
                sent = time.monotonic()
                try:
                    async with session.post(url, json=body, headers=headers) as response:
                        payload = await response.json(content_type=None)
                        ok = response.status == 202
                except (aiohttp.ClientError, asyncio.TimeoutError, ValueError) as e:
                    print(f"outside_client: submit failed: {e!r}", file=sys.stderr)
                    ok, payload = False, None
                latencies.append((time.monotonic() - sent) * 1000.0)
                job_id = payload.get("job_id") if ok and isinstance(payload, dict) else None
                if job_id:
                    accepted[job_id] = sent
                else:
                    errors += 1

        await asyncio.gather(*(one_at_a_time() for _ in range(args.concurrency)))
    return accepted, latencies, errors, time.monotonic() - started, started


async def wait_for_webhooks(args, expected):
    """Polls the receiver until `expected` webhooks arrived or none came for --idle-timeout s."""
    async with aiohttp.ClientSession() as session:
        last_count, last_change = -1, time.monotonic()
        while True:
            async with session.get(args.receiver.rstrip("/") + "/_stats") as response:
                stats = await response.json()
            if stats["received"] != last_count:
                last_count, last_change = stats["received"], time.monotonic()
            if stats["received"] >= expected or time.monotonic() - last_change > args.idle_timeout:
                break
            await asyncio.sleep(0.05)
        async with session.get(args.receiver.rstrip("/") + "/_arrivals") as response:
            arrivals = await response.json()
    return stats, arrivals


async def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--api", required=True)
    parser.add_argument("--receiver", required=True, help="the receiver's base URL")
    parser.add_argument("--scenario", default="8 outside harness")
    parser.add_argument("--jobs", type=int, required=True)
    parser.add_argument("--concurrency", type=int, default=200)
    parser.add_argument("--idle-timeout", type=float, default=120.0)
    parser.add_argument("--out", required=True)
    args = parser.parse_args()

    body = {
        "workflow_name": "bench_pipeline",
        "input_data": {"text": f"{TEXT}\nEMULATOR_SCORE: 80"},
        "webhook_url": args.receiver.rstrip("/") + "/hooks/outside",
    }
    accepted, latencies, submit_errors, submit_elapsed, started = await submit_all(args, body)
    stats, arrivals = await wait_for_webhooks(args, len(accepted))

    e2e, last_arrival = [], started
    for job_id, sent in accepted.items():
        arrived = arrivals.get(job_id)
        if arrived is not None:
            e2e.append((arrived - sent) * 1000.0)
            last_arrival = max(last_arrival, arrived)
    unknown = sum(1 for job_id in arrivals if job_id not in accepted)
    s50, s99, smax = summary(latencies)
    e50, e99, emax = summary(e2e)
    e2e_seconds = max(last_arrival - started, 1e-9)
    missing = len(accepted) - len(e2e)
    out = {
        "scenario": args.scenario,
        "workflow": "bench_pipeline",
        "client": f"python aiohttp {aiohttp.__version__}",
        "jobs": args.jobs,
        "concurrency": args.concurrency,
        "submitted": len(accepted),
        "submit_errors": submit_errors,
        "submit_p50_ms": round(s50, 2),
        "submit_p99_ms": round(s99, 2),
        "submit_max_ms": round(smax, 2),
        "submit_rate": round(len(accepted) / submit_elapsed, 1),
        "webhooks": len(e2e),
        "webhooks_missing": missing,
        "webhooks_rejected": stats["rejected"],
        "webhooks_duplicate": stats["duplicates"],
        "webhooks_unknown_job": unknown,
        "jobs_not_completed": stats["not_completed"],
        "e2e_throughput": round(len(e2e) / e2e_seconds, 1),
        "e2e_p50_ms": round(e50, 1),
        "e2e_p99_ms": round(e99, 1),
        "e2e_max_ms": round(emax, 1),
        "e2e_seconds": round(e2e_seconds, 2),
        "errors": submit_errors + missing + stats["rejected"] + stats["not_completed"],
    }
    if stats["failures"]:
        out["failures"] = stats["failures"]
    with open(args.out, "w", encoding="utf-8") as f:
        f.write(json.dumps(out) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
