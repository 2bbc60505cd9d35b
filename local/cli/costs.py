"""`make costs`: what one reconcile of an N-server wave and one GET cost in AWS requests.

Builds an N-server wave on the embedded stack (every server launched and visible, the job
completed), delivers one Launch Result event, and prints the requests the reconcile made by
service and operation, then those of one GET /executions/{id}, and the wave item's size.
"""

from __future__ import annotations

import argparse
import sys

from local.stack import LocalStack
from reconciler.store import estimate_item_bytes, from_attrs, wave_key


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--servers", type=int, default=100, help="servers in the wave (1-200)")
    args = parser.parse_args(argv)
    with LocalStack(max_servers_per_job=max(args.servers, 1)) as stack:
        sids = stack.add_servers([f"srv-{i:03d}" for i in range(args.servers)])
        body = {"name": "costs", "isDrill": True, "waves": [{"name": "w", "sourceServerIds": sids}]}
        status, _, document = stack.http("POST", "/executions", body=body)
        if status != 202:
            print(f"POST /executions answered {status}: {document}")
            return 1
        job = document["waves"][0]["jobId"]
        for sid in sids:
            stack.launch(job, sid)
        stack.fake.set_job_status(job, "STARTED")
        stack.fake.set_job_status(job, "COMPLETED")
        stack.counter.reset()
        outcome = stack.deliver(job, sids[0])
        reconcile = dict(sorted(stack.counter.calls.items()))
        stack.counter.reset()
        final = stack.get_execution(document["executionId"])
        read = dict(sorted(stack.counter.calls.items()))
        key = wave_key(document["executionId"], 1).as_key()
        item = stack.dynamodb.get_item(TableName=stack.table_name, Key=key)["Item"]
    print(
        f"one reconcile of a {args.servers}-server wave ({outcome['outcome']}, wave {final['waves'][0]['status']}):"
    )
    for name, count in reconcile.items():
        print(f"  {name:<34} {count}")
    print(f"  {'total':<34} {sum(reconcile.values())}")
    print("one GET /executions/{id}:")
    for name, count in read.items():
        print(f"  {name:<34} {count}")
    print(f"wave item size (estimate): {estimate_item_bytes(from_attrs(item))} bytes")
    return 0


if __name__ == "__main__":
    sys.exit(main())
