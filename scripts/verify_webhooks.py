"""Verifies captured llmflow webhook deliveries with the official PyPI `standardwebhooks` package.

    python3 scripts/verify_webhooks.py CAPTURE_DIR

Each `*.json` file in CAPTURE_DIR holds {secrets: [...], headers: {webhook-id, webhook-timestamp,
webhook-signature}, body: "<raw body>"} (written by the `webhooks::captured_deliveries_verify_with_each_key`
test). Every secret must verify the delivery on its own (key rotation sends two signatures), and a
tampered body must be rejected. The package is loaded from STANDARDWEBHOOKS_PY_TARGET (default
.cache/verify/py, filled by `pip install --target`). Exits 1 on any failure or when nothing was
verified.
"""

import json
import os
import re
import sys
from datetime import datetime, timezone
from pathlib import Path

sys.path.insert(0, os.path.abspath(os.environ.get("STANDARDWEBHOOKS_PY_TARGET", ".cache/verify/py")))

from standardwebhooks.webhooks import Webhook  # noqa: E402


def main() -> int:
    if len(sys.argv) != 2:
        print("usage: python3 scripts/verify_webhooks.py CAPTURE_DIR", file=sys.stderr)
        return 2
    failures = 0

    def fail(message: str) -> None:
        nonlocal failures
        failures += 1
        print(f"FAIL {message}", file=sys.stderr)

    # The known-answer vector of the notes (signing only: its timestamp is years old).
    signature = Webhook("whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD").sign(
        "msg_27UH4WbU6Z5A5EzD8u03UvzRbpk",
        datetime.fromtimestamp(1649367553, tz=timezone.utc),
        '{"email":"test@example.com","username":"test_user"}',
    )
    if signature != "v1,tZ1I4/hDygAJgO5TYxiSd6Sd0kDW6hPenDe+bTa3Kkw=":
        fail(f"known-answer vector: got {signature}")

    verified = 0
    rejected = 0
    files = sorted(Path(sys.argv[1]).glob("*.json"))
    for file in files:
        capture = json.loads(file.read_text(encoding="utf-8"))
        headers = capture["headers"]
        signatures = len(headers["webhook-signature"].split(" "))
        if len(capture["secrets"]) > 1 and signatures != len(capture["secrets"]):
            fail(f"{file.name}: {len(capture['secrets'])} keys but {signatures} signatures")
        for secret in capture["secrets"]:
            try:
                Webhook(secret).verify(capture["body"], headers)
                verified += 1
            except Exception as e:  # the package raises WebhookVerificationError
                fail(f"{file.name}: does not verify with one of its keys: {e!r}")
            # Negative control: the same headers with a changed body must be rejected.
            tampered = re.sub(r"}\s*$", ',"tampered":true}', capture["body"])
            try:
                Webhook(secret).verify(tampered, headers)
                fail(f"{file.name}: a tampered body verified")
            except Exception:
                rejected += 1

    print(
        f"PyPI standardwebhooks: {verified} signature checks passed over {len(files)} deliveries; "
        f"{rejected} tampered bodies rejected as expected; {failures} failures"
    )
    if failures or verified == 0 or rejected != verified:
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
