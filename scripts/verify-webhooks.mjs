// Verifies captured llmflow webhook deliveries with the official npm `standardwebhooks` package.
//
//   node scripts/verify-webhooks.mjs CAPTURE_DIR
//
// Each `*.json` file in CAPTURE_DIR holds {secrets: [...], headers: {webhook-id, webhook-timestamp,
// webhook-signature}, body: "<raw body>"} (written by the `webhooks::captured_deliveries_verify_with_each_key`
// test). Every secret must verify the delivery on its own (key rotation sends two signatures), and a
// tampered body must be rejected. The package is loaded from STANDARDWEBHOOKS_NODE_PREFIX (default
// .cache/verify/node, filled by `npm install --prefix`). Exits 1 on any failure or when nothing was
// verified.
import { createRequire } from "node:module";
import { readdirSync, readFileSync } from "node:fs";
import path from "node:path";

const dir = process.argv[2];
if (!dir) {
  console.error("usage: node scripts/verify-webhooks.mjs CAPTURE_DIR");
  process.exit(2);
}
const prefix = path.resolve(process.env.STANDARDWEBHOOKS_NODE_PREFIX ?? ".cache/verify/node");
const require = createRequire(path.join(prefix, "package.json"));
const { Webhook } = require("standardwebhooks");

let failures = 0;
const fail = (message) => {
  failures += 1;
  console.error(`FAIL ${message}`);
};

// The known-answer vector of the notes (signing only: its timestamp is years old).
{
  const wh = new Webhook("whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD");
  const signature = wh.sign(
    "msg_27UH4WbU6Z5A5EzD8u03UvzRbpk",
    new Date(1649367553 * 1000),
    '{"email":"test@example.com","username":"test_user"}',
  );
  if (signature !== "v1,tZ1I4/hDygAJgO5TYxiSd6Sd0kDW6hPenDe+bTa3Kkw=") {
    fail(`known-answer vector: got ${signature}`);
  }
}

let verified = 0;
let rejected = 0;
const files = readdirSync(dir).filter((f) => f.endsWith(".json")).sort();
for (const file of files) {
  const capture = JSON.parse(readFileSync(path.join(dir, file), "utf8"));
  const signatures = capture.headers["webhook-signature"].split(" ").length;
  if (capture.secrets.length > 1 && signatures !== capture.secrets.length) {
    fail(`${file}: ${capture.secrets.length} keys but ${signatures} signatures`);
  }
  for (const secret of capture.secrets) {
    try {
      new Webhook(secret).verify(capture.body, capture.headers);
      verified += 1;
    } catch (e) {
      fail(`${file}: does not verify with one of its keys: ${e.message}`);
    }
    // Negative control: the same headers with a changed body must be rejected.
    const tampered = capture.body.replace(/}\s*$/, ',"tampered":true}');
    try {
      new Webhook(secret).verify(tampered, capture.headers);
      fail(`${file}: a tampered body verified`);
    } catch {
      rejected += 1;
    }
  }
}
console.log(
  `npm standardwebhooks: ${verified} signature checks passed over ${files.length} deliveries; ` +
    `${rejected} tampered bodies rejected as expected; ${failures} failures`,
);
if (failures > 0 || verified === 0 || rejected !== verified) {
  process.exit(1);
}
