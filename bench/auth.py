"""What checking the caller's token adds to a request once the process is warm.

Against the sandbox (the home tenant's OpenID configuration and JWKS over HTTPS, TLS verified):
- the first check of a process: the configuration and the key set are fetched;
- a warm check of a token never seen (`CallerTokens.verify`): header, cached key by kid, RS256
  signature, claims, caller;
- a warm check of the token the web app sent before (it reuses one for about an hour): its hash
  is remembered;
- a warm route: the same handler behind `@tenant_route` (token, X-Organization-Id) and behind the
  plain `@endpoint`, side by side, for a new token each time and for a repeated one: the
  difference is what a caller pays per request.
Target: under 1 ms per request when warm (p95 of a new token each time). The last line is
`BENCH {json}`.
Usage: python bench/auth.py [--checks 2000]
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

TARGET_MS = 1.0


def micros(samples: list[float]) -> dict[str, float]:
    ordered = sorted(samples)
    return {"p50": round(statistics.median(ordered) * 1e6, 1),
            "p95": round(ordered[round(0.95 * (len(ordered) - 1))] * 1e6, 1),
            "mean": round(statistics.fmean(ordered) * 1e6, 1)}


def timed(call, runs: int) -> list[float]:
    samples = []
    for _ in range(runs):
        began = time.perf_counter()
        call()
        samples.append(time.perf_counter() - began)
    return samples


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--checks", type=int, default=2000)
    args = parser.parse_args()

    from sandbox.testing import start_sandbox
    from tests.support.callers import ORGANIZATION, caller_env, caller_token, forged

    work = Path(tempfile.mkdtemp(prefix="bench-auth-"))
    sandbox = start_sandbox(work / "sandbox", ROOT / "tests" / "sandbox_seed.json")
    try:
        os.environ.update({
            "PUBLIC_BASE_URL": "http://127.0.0.1:7071", "ALLOWED_RETURN_ORIGINS": "http://127.0.0.1:3000",
            "APP_CLIENT_ID": "11111111-2222-3333-4444-555555555555", "KEY_VAULT_URL": sandbox.base_url,
            "SERVICE_STORAGE": "UseDevelopmentStorage=true", "IDENTITY_AUTHORITY_HOST": sandbox.base_url,
            "REQUESTS_CA_BUNDLE": str(sandbox.ca_bundle), "LOG_LEVEL": "WARNING", **caller_env()})
        logging.basicConfig(level=logging.WARNING)  # as on Azure at LOG_LEVEL=WARNING: the INFO line is skipped
        import azure.functions as func

        from shared.callers import tenant_route
        from shared.clients import caller_tokens
        from shared.http import endpoint, json_response

        token = caller_token(sandbox)
        checker = caller_tokens()

        began = time.perf_counter()
        checker.verify(token)  # fetches the configuration and the key set
        cold_ms = (time.perf_counter() - began) * 1000

        # Tokens never seen: the same caller and claims, each with its own uti (as each new token has).
        fresh = [forged(sandbox, uti=f"bench-{i}") for i in range(2 * args.checks + 400)]
        unseen = iter(fresh)
        for _ in range(200):  # warm-up
            checker.verify(next(unseen))
            checker.verify(token)
        new_check = micros(timed(lambda: checker.verify(next(unseen)), args.checks))
        repeat_check = micros(timed(lambda: checker.verify(token), args.checks))

        def handler(req, caller=None):
            return json_response({"ok": True})

        plain, guarded = endpoint(handler), tenant_route(handler)

        def request(bearer: str):
            return func.HttpRequest(method="GET", url="http://127.0.0.1:7071/api/tenants/x", body=b"",
                                    headers={"Authorization": f"Bearer {bearer}", "X-Organization-Id": ORGANIZATION})

        repeated = request(token)
        if guarded(repeated).status_code != 200:
            raise SystemExit("the token was refused: the bench would measure a refusal")
        for _ in range(200):
            plain(repeated), guarded(request(next(unseen)))
        new_requests = [request(next(unseen)) for _ in range(args.checks)]
        plain_route = micros(timed(lambda: plain(repeated), args.checks))
        pending = iter(new_requests)
        route_new = micros(timed(lambda: guarded(next(pending)), args.checks))
        route_repeat = micros(timed(lambda: guarded(repeated), args.checks))
        added_new = {k: round(route_new[k] - plain_route[k], 1) for k in ("p50", "p95", "mean")}
        added_repeat = {k: round(route_repeat[k] - plain_route[k], 1) for k in ("p50", "p95", "mean")}

        def row(label: str, figures: dict[str, float]) -> str:
            return (f"  {label:<32} p50 {figures['p50']:7.1f} us  p95 {figures['p95']:7.1f} us  "
                    f"mean {figures['mean']:7.1f} us")

        print(f"auth: {args.checks} warm checks each (RS256, 2048-bit key), the sandbox as the identity platform")
        print(f"  {'first check of a process':<32} {cold_ms:7.1f} ms  (OpenID configuration + key set over HTTPS)")
        print(row("warm check, a token never seen", new_check))
        print(row("warm check, the same token again", repeat_check))
        print(row("route with @endpoint only", plain_route))
        print(row("added by @tenant_route, new", added_new) + f"  (target under {TARGET_MS:.0f} ms)")
        print(row("added by @tenant_route, repeat", added_repeat))
        result = {"bench": "auth", "checks": args.checks, "cold_first_check_ms": round(cold_ms, 1),
                  "warm_check_new_token_us": new_check, "warm_check_repeated_token_us": repeat_check,
                  "route_plain_us": plain_route, "added_per_request_new_token_us": added_new,
                  "added_per_request_repeated_token_us": added_repeat, "target_ms": TARGET_MS,
                  "under_target": added_new["p95"] / 1000 < TARGET_MS}
        print("BENCH " + json.dumps(result, separators=(",", ":")))
    finally:
        sandbox.stop()


if __name__ == "__main__":
    main()
