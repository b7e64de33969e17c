"""Load client for the durability checks: writes while the server or its database is being killed,
logs every acknowledged write, and verifies them afterwards. Standard library only."""

import http.client
import json
import sys
import threading
import time


def call(port, method, path, key, body=None, timeout=2.0):
    """Returns (status, headers, parsed body or None, seconds); status 0 when the call failed."""
    started = time.monotonic()
    try:
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
        headers = {"Authorization": f"Bearer {key}"}
        data = None
        if body is not None:
            data = json.dumps(body)
            headers["Content-Type"] = "application/json"
        connection.request(method, path, body=data, headers=headers)
        response = connection.getresponse()
        raw = response.read()
        connection.close()
        parsed = json.loads(raw) if raw else None
        return response.status, dict(response.getheaders()), parsed, time.monotonic() - started
    except (OSError, http.client.HTTPException, ValueError):
        return 0, {}, None, time.monotonic() - started


def load(port, key, seconds, threads, acks_path, prefix):
    """Identify new customers and send one event each; append acknowledged writes to acks_path."""
    lock = threading.Lock()
    stop = time.monotonic() + seconds
    statuses = {}
    slowest = [0.0]

    def worker(number):
        n = 0
        with open(acks_path, "a") as acks:
            while time.monotonic() < stop:
                n += 1
                customer = f"{prefix}-{number}-{n}"
                status, headers, body, took = call(port, "POST", "/api/v1/identify", key,
                                                   {"model": "customer", "ids": [customer],
                                                    "properties": {"email": f"{customer}@example.com"}})
                with lock:
                    statuses[status] = statuses.get(status, 0) + 1
                    slowest[0] = max(slowest[0], took)
                    if status == 503 and "retry-after" not in {h.lower() for h in headers}:
                        statuses["503 without Retry-After"] = statuses.get("503 without Retry-After", 0) + 1
                if status != 200:
                    time.sleep(0.05)
                    continue
                acks.write(f"identify {customer} {body['instanceId']}\n")
                acks.flush()
                message = f"m-{customer}"
                status, headers, body, took = call(port, "POST", "/api/v1/events", key,
                                                   {"name": "probe", "ids": [customer], "messageId": message})
                with lock:
                    statuses[status] = statuses.get(status, 0) + 1
                    slowest[0] = max(slowest[0], took)
                if status == 200 and body.get("accepted"):
                    acks.write(f"event {message} {body['eventId']} {customer}\n")
                    acks.flush()

    workers = [threading.Thread(target=worker, args=(number,)) for number in range(threads)]
    for thread in workers:
        thread.start()
    for thread in workers:
        thread.join()
    print(json.dumps({"statuses": {str(k): v for k, v in statuses.items()}, "slowest_seconds": round(slowest[0], 3)}))


def verify(port, key, acks_path):
    """Every acknowledged identify resolves to its instance; every acknowledged event is stored once."""
    identified = events = 0
    lost = []
    with open(acks_path) as acks:
        lines = [line.split() for line in acks if line.strip()]
    for fields in lines:
        if fields[0] == "identify":
            _, customer, instance = fields
            status, _, body, _ = call(port, "GET", f"/api/v1/models/customer/instances/{customer}", key, timeout=10)
            if status != 200 or body["instanceId"] != instance:
                lost.append(f"identify {customer}: {status}")
            identified += 1
        else:
            _, message, event_id, customer = fields
            status, _, body, _ = call(port, "POST", "/api/v1/events", key,
                                      {"name": "probe", "ids": [customer], "messageId": message}, timeout=10)
            if status != 200 or not body.get("duplicate") or body.get("eventId") != event_id:
                lost.append(f"event {message}: {status} {body}")
            events += 1
    print(f"acknowledged writes checked: {identified} identifies, {events} events; missing or duplicated: {len(lost)}")
    if identified == 0 or events == 0:
        print("  FAIL: nothing was acknowledged, so nothing was proven")
        return False
    for line in lost[:10]:
        print("  LOST", line)
    return not lost


if __name__ == "__main__":
    command, port, key = sys.argv[1], int(sys.argv[2]), sys.argv[3]
    if command == "load":
        load(port, key, float(sys.argv[4]), int(sys.argv[5]), sys.argv[6], sys.argv[7])
    elif command == "verify":
        sys.exit(0 if verify(port, key, sys.argv[4]) else 1)
