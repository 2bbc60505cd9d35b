"""A fake AWS Elastic Disaster Recovery (DRS) service: real boto3 clients talk to it over HTTP.

moto has no DRS, so tests and the local demo run against this fake instead: `DrsFake` holds the
state and answers the operations the reconciler uses, and `DrsFakeServer` serves it as DRS's
rest-json protocol (`POST /<Operation>`, JSON in and out, errors named by `x-amzn-ErrorType`) on
127.0.0.1, so `AWS_ENDPOINT_URL_DRS` or `endpoint_url` points a real client at it. Every request
is checked against botocore's DRS input shape (a mismatch answers ValidationException) and every
response against its output shape, enums and patterns included, so the fake cannot drift into
saying something the real service never could.
"""

from __future__ import annotations

import base64
import binascii
import copy
import json
import threading
import time
from collections.abc import Callable
from datetime import datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any, cast

from local.drs_fake_state import (
    OPERATIONS,
    DrsApiError,
    DrsState,
    Json,
    api_name,
    render_time,
    validation_error,
)
from local.drs_model import operation_model, validate_request, validate_response

__all__ = ["OPERATIONS", "DrsApiError", "DrsFake", "DrsFakeServer", "api_name", "render_time"]


class DrsFake(DrsState):
    """In-memory DRS with the API operations; each takes and returns wire-form JSON dicts.

    Operations accept a params dict, keyword arguments, or both (`describe_jobs(maxResults=1)`).
    Every call is recorded in `calls` before anything else, so throttled and invalid calls count.
    """

    def dispatch(self, operation_name: str, params: Json | None = None) -> Json:
        """Run an operation by its API name (`DescribeJobs`) or method name (`describe_jobs`)."""
        name = api_name(operation_name)
        if name not in OPERATIONS:
            raise DrsApiError("UnknownOperationException", 404, f"Unknown operation {operation_name!r}")
        method: Callable[[Json], Json] = getattr(self, OPERATIONS[name])
        return method(params or {})

    def latency(self, operation_name: str) -> float:
        """Seconds the HTTP server waits before answering (none here; the simulator draws some)."""
        return 0.0

    def _begin(self, name: str, params: Json, extra: Json) -> Json:
        request = copy.deepcopy({**params, **extra})
        self.calls.append((name, copy.deepcopy(request)))
        if self._throttles[name] > 0:
            self._throttles[name] -= 1
            raise DrsApiError("ThrottlingException", 429, "Rate exceeded")
        try:
            validate_request(name, request)
        except ValueError as error:
            raise validation_error(str(error)) from error
        return request

    def _finish(self, name: str, response: Json) -> Json:
        result = copy.deepcopy(response)
        validate_response(name, result)
        return result

    def _page(self, name: str, items: list[Json], request: Json) -> Json:
        size: int = request.get("maxResults", self.default_page_size)
        start = self._decode_token(name, request.get("nextToken"))
        response: Json = {"items": items[start : start + size]}
        if start + size < len(items):
            token = f"{name}:{start + size}".encode()
            response["nextToken"] = base64.urlsafe_b64encode(token).decode()
        return self._finish(name, response)

    @staticmethod
    def _decode_token(name: str, token: str | None) -> int:
        if not token:
            return 0
        try:
            op, offset = base64.urlsafe_b64decode(token.encode()).decode().split(":")
            if op != name:
                raise ValueError(op)
            return int(offset)
        except (ValueError, binascii.Error, UnicodeDecodeError) as error:
            raise validation_error(f"Invalid nextToken {token!r}") from error

    # --------------------------------------------------------------- operations

    def start_recovery(self, params: Json | None = None, /, **kwargs: Any) -> Json:
        """StartRecovery: a new LAUNCH job, PENDING, every server PENDING."""
        with self._lock:
            request = self._begin("StartRecovery", params or {}, kwargs)
            wanted = [entry["sourceServerID"] for entry in request["sourceServers"]]
            unknown = [sid for sid in wanted if sid not in self._servers]
            if unknown:
                raise validation_error(f"Unknown source server IDs: {unknown}")
            if len(set(wanted)) != len(wanted):
                raise validation_error("Source server IDs must be unique")
            if len(wanted) > self.max_servers_per_job:
                raise DrsApiError(
                    "ServiceQuotaExceededException",
                    402,
                    f"A job can launch at most {self.max_servers_per_job} servers, got {len(wanted)}",
                )
            busy = [sid for sid in wanted if sid in self._servers_in_active_jobs()]
            if busy:
                message = f"Source servers already in an active job: {busy}"
                raise DrsApiError("ConflictException", 409, message)
            is_drill = bool(request.get("isDrill", False))
            participants = [{"sourceServerID": sid, "launchStatus": "PENDING"} for sid in wanted]
            initiated_by = "START_DRILL" if is_drill else "START_RECOVERY"
            job = self._new_job("LAUNCH", initiated_by, participants, request.get("tags", {}), is_drill)
            for sid in wanted:
                server = self._servers[sid]
                server["lastLaunchResult"] = "PENDING"
                server["lifeCycle"]["lastLaunch"] = {
                    "initiated": {
                        "apiCallDateTime": job["creationDateTime"],
                        "jobID": job["jobID"],
                        "type": "DRILL" if is_drill else "RECOVERY",
                    },
                    "status": "PENDING",
                }
            return self._finish("StartRecovery", {"job": job})

    def describe_jobs(self, params: Json | None = None, /, **kwargs: Any) -> Json:
        """DescribeJobs: newest first; unknown job IDs are simply absent."""
        with self._lock:
            request = self._begin("DescribeJobs", params or {}, kwargs)
            filters = request.get("filters", {})
            ids = set(filters.get("jobIDs") or [])
            low = self._parse_filter_date(filters.get("fromDate"))
            high = self._parse_filter_date(filters.get("toDate"))
            items = []
            for job in reversed(self._jobs.values()):
                created = datetime.fromisoformat(job["creationDateTime"])
                if ids and job["jobID"] not in ids:
                    continue
                if (low and created < low) or (high and created > high):
                    continue
                items.append(job)
            return self._page("DescribeJobs", items, request)

    def describe_recovery_instances(self, params: Json | None = None, /, **kwargs: Any) -> Json:
        """DescribeRecoveryInstances: oldest first; an empty filter list means all."""
        with self._lock:
            request = self._begin("DescribeRecoveryInstances", params or {}, kwargs)
            filters = request.get("filters", {})
            ids = set(filters.get("recoveryInstanceIDs") or [])
            servers = set(filters.get("sourceServerIDs") or [])
            items = [
                instance
                for instance in self._instances.values()
                if (not ids or instance["recoveryInstanceID"] in ids)
                and (not servers or instance["sourceServerID"] in servers)
            ]
            return self._page("DescribeRecoveryInstances", items, request)

    def describe_source_servers(self, params: Json | None = None, /, **kwargs: Any) -> Json:
        """DescribeSourceServers: oldest first; unknown IDs are simply absent."""
        with self._lock:
            request = self._begin("DescribeSourceServers", params or {}, kwargs)
            filters = request.get("filters", {})
            ids = set(filters.get("sourceServerIDs") or [])
            hardware = filters.get("hardwareId")
            items = [
                server
                for server in self._servers.values()
                if (not ids or server["sourceServerID"] in ids)
                and (hardware is None or hardware in _hints(server).values())
                and not filters.get("stagingAccountIDs")  # the fake has no extended source servers
            ]
            return self._page("DescribeSourceServers", items, request)

    def describe_job_log_items(self, params: Json | None = None, /, **kwargs: Any) -> Json:
        """DescribeJobLogItems: oldest first; an unknown job has no log items."""
        with self._lock:
            request = self._begin("DescribeJobLogItems", params or {}, kwargs)
            return self._page("DescribeJobLogItems", self._logs.get(request["jobID"], []), request)

    def terminate_recovery_instances(self, params: Json | None = None, /, **kwargs: Any) -> Json:
        """TerminateRecoveryInstances: a TERMINATE job, returned already COMPLETED (the simulator
        plays it over time instead).

        The instances stay listed with ec2InstanceState TERMINATED; their servers turn TERMINATED
        in the job that launched them; their EC2 instances are terminated (`terminate_ec2`).
        """
        with self._lock:
            request = self._begin("TerminateRecoveryInstances", params or {}, kwargs)
            ids = list(dict.fromkeys(request["recoveryInstanceIDs"]))
            job = self._terminate_job(ids)
            for rid in ids:
                self.terminate_instance(job["jobID"], rid)
            self.set_job_status(job["jobID"], "COMPLETED")
            return self._finish("TerminateRecoveryInstances", {"job": job})

    def _terminate_job(self, ids: list[str]) -> Json:
        """A new TERMINATE job for these recovery instances (checked as DRS checks them)."""
        unknown = [rid for rid in ids if rid not in self._instances]
        if unknown:
            raise validation_error(f"Unknown recovery instance IDs: {unknown}")
        gone = [rid for rid in ids if self._instances[rid]["ec2InstanceState"] == "TERMINATED"]
        if gone:
            raise DrsApiError("ConflictException", 409, f"Recovery instances already terminated: {gone}")
        participants = [
            {
                "sourceServerID": self._instances[rid]["sourceServerID"],
                "recoveryInstanceID": rid,
                "launchStatus": "PENDING",
            }
            for rid in ids
        ]
        return self._new_job("TERMINATE", "TERMINATE_RECOVERY_INSTANCES", participants, {}, False)

    def terminate_instance(self, job_id: str, recovery_instance_id: str) -> None:
        """DRS truth: a TERMINATE job's instance is gone (DRS, the launch job, EC2)."""
        with self._lock:
            instance = self._instances[recovery_instance_id]
            sid = instance["sourceServerID"]
            instance["ec2InstanceState"] = "TERMINATED"
            for server in self._jobs[instance["jobID"]]["participatingServers"]:
                if server.get("recoveryInstanceID") == recovery_instance_id:
                    server["launchStatus"] = "TERMINATED"
            for server in self._jobs[job_id]["participatingServers"]:
                if server.get("recoveryInstanceID") == recovery_instance_id:
                    server["launchStatus"] = "TERMINATED"
            if self._servers[sid].get("recoveryInstanceId") == recovery_instance_id:
                del self._servers[sid]["recoveryInstanceId"]
            if self.terminate_ec2 is not None:
                self.terminate_ec2(instance["ec2InstanceID"])

    @staticmethod
    def _parse_filter_date(text: str | None) -> datetime | None:
        if not text:
            return None
        try:
            return datetime.fromisoformat(text)
        except ValueError as error:
            raise validation_error(f"Invalid date {text!r}") from error


def _hints(server: Json) -> dict[str, str]:
    hints: dict[str, str] = server["sourceProperties"]["identificationHints"]
    return hints


def success_status(operation_name: str) -> int:
    """The HTTP status DRS answers an operation with (202 for StartRecovery, else 200)."""
    status: int = operation_model(operation_name).http.get("responseCode", 200)
    return status


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    fake: DrsFake
    route: Callable[[str | None], DrsFake] | None
    errors: list[BaseException]


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # headers and body go out as separate writes

    def do_POST(self) -> None:
        server = cast(_Server, self.server)
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        operation = self.path.split("?", 1)[0].strip("/")
        try:
            params = json.loads(raw) if raw.strip() else {}
            if not isinstance(params, dict):
                raise validation_error("The request body must be a JSON object")
            name = api_name(operation) if operation else ""
            if name not in OPERATIONS:
                raise DrsApiError("UnknownOperationException", 404, f"Unknown operation {operation!r}")
            fake = (
                server.route(self.headers.get("Authorization")) if server.route is not None else server.fake
            )
            delay = fake.latency(name)
            if delay:
                time.sleep(delay)
            body = fake.dispatch(name, params)
        except json.JSONDecodeError as error:
            self._error(DrsApiError("ValidationException", 400, f"Could not parse the request body: {error}"))
        except DrsApiError as error:
            self._error(error)
        except Exception as error:  # a bug in the fake: answer 500 and keep it for the test to see
            server.errors.append(error)
            self._error(DrsApiError("InternalServerException", 500, f"{type(error).__name__}: {error}"))
        else:
            self._send(success_status(name), body, {})

    def do_GET(self) -> None:
        self._error(DrsApiError("UnknownOperationException", 404, "DRS answers POST /<Operation> only"))

    do_PUT = do_DELETE = do_PATCH = do_GET

    def log_message(self, format: str, *args: Any) -> None:
        """Silence the access log."""

    def _error(self, error: DrsApiError) -> None:
        self._send(error.status, {"message": error.message}, {"x-amzn-ErrorType": error.code})

    def _send(self, status: int, body: Json, headers: dict[str, str]) -> None:
        payload = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.send_header("x-amzn-RequestId", "00000000-0000-4000-8000-000000000000")
        for key, value in headers.items():
            self.send_header(key, value)
        self.end_headers()
        self.wfile.write(payload)


class DrsFakeServer:
    """Serves a DrsFake on http://127.0.0.1:PORT from a daemon thread; starts at once.

    With `route`, each request is answered by the fake `route(its Authorization header)` picks (DRS per
    account and Region, `local.accounts.DrsTargets.for_request`; it may raise DrsApiError);
    `fake` is then the default one (the hub's)."""

    def __init__(
        self,
        fake: DrsFake | None = None,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        route: Callable[[str | None], DrsFake] | None = None,
    ) -> None:
        self.fake = fake if fake is not None else DrsFake()
        self._httpd = _Server((host, port), _Handler)
        self._httpd.fake = self.fake
        self._httpd.route = route
        self._httpd.errors = []
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05}, name="drs-fake", daemon=True
        )
        self._thread.start()
        self._stopped = False

    @property
    def endpoint_url(self) -> str:
        host, port = self._httpd.server_address[:2]
        return f"http://{host!s}:{port}"

    @property
    def errors(self) -> list[BaseException]:
        """Unexpected exceptions raised inside the fake (each answered as InternalServerException)."""
        return self._httpd.errors

    def stop(self) -> None:
        if not self._stopped:
            self._stopped = True
            self._httpd.shutdown()
            self._httpd.server_close()
            self._thread.join(timeout=5)

    def __enter__(self) -> DrsFakeServer:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()
