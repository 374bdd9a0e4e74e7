"""Runs scim2-tester (an independent SCIM 2.0 conformance checker, PyPI) against a server.

Usage: scim_conformance.py BASE_URL TOKEN

Prints every check and exits 1 if any check came out as an error or critical, 0 otherwise.
Deviations (SHOULD-level) are printed but do not fail the run; docs/scim.md explains the
ones Wardgate makes on purpose.
"""

import sys

import httpx2
from scim2_client.engines.httpx2 import SyncSCIMClient
from scim2_tester import check_server
from scim2_tester.utils import Status


def main() -> int:
    base_url, token = sys.argv[1], sys.argv[2]
    http = httpx2.Client(base_url=base_url, headers={"Authorization": f"Bearer {token}"}, timeout=30)
    client = SyncSCIMClient(http)
    results = check_server(client)
    failed = 0
    for r in results:
        bad = r.status in (Status.ERROR, Status.CRITICAL)
        failed += bad
        line = f"{r.status.name:<10} {r.resource_type or '-':<6} {r.title}"
        if bad or r.status == Status.DEVIATION:
            line += f": {r.reason}"
        print(line)
    counts = {}
    for r in results:
        counts[r.status.name] = counts.get(r.status.name, 0) + 1
    print("summary:", ", ".join(f"{k}={v}" for k, v in sorted(counts.items())))
    if not results:
        print("no checks ran", file=sys.stderr)
        return 1
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
