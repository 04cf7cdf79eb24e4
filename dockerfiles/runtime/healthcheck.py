"""HEALTHCHECK probe written in Python (the runtime images have no curl and no shell).

Exits 0 when http://127.0.0.1:$PORT<health path> answers 200 within 3 s, else 1. An image
without an HTTP service (the trainer job) has nothing to probe and reports so with 0.
"""

import http.client
import json
import os
import sys
import urllib.request
from pathlib import Path

SPEC = Path(__file__).with_name("launch.json")


def main() -> int:
    spec = json.loads(SPEC.read_text())
    path = spec.get("health")
    if not path:
        print("no HTTP service in this image: nothing to probe")
        return 0
    url = f"http://127.0.0.1:{os.environ.get('PORT', spec['port'])}{path}"
    try:
        # The probe targets this container: never through an HTTP(S)_PROXY from the env.
        opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
        with opener.open(url, timeout=3) as response:
            ok = response.status == 200
    except (OSError, http.client.HTTPException) as exc:  # incl. a garbled answer
        print(f"unhealthy: {url}: {exc}")
        return 1
    print(f"{'healthy' if ok else 'unhealthy'}: {url}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
