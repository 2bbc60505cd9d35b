"""The live stack's HTTP functions, run as Lambda runs them: worker processes, one invocation each.

Why this exists: Powertools' HTTP resolver keeps the request being handled in class state
(`BaseRouter.current_event`), shared by the whole process. Lambda never notices, because an
execution environment handles one invocation at a time; a local server that handled two requests
at once in one process would let each read the other's event (a POST would create an execution
from another POST's body). The live stack used to answer one request at a time under a lock, so
its reads queued behind every other request. Here each HTTP function of serverless.yml (`read`,
`start`: `serves_http`) gets its own pool of worker processes instead, like Lambda's execution
environments: each worker imports the function's handler and handles ONE invocation at a time,
and several workers of a function run at once, so the HTTP API is concurrent and no request can
see another's event. The non-HTTP functions (reconcile, advance, sweep) still run on the event
bus's threads in the stack's process (`local.bus`).

Workers are started with multiprocessing's "spawn" context (never fork a process that runs
threads, as the stack does). The pool is Lambda-like: ON DEMAND, with `prewarm` workers of each
function started in the background when the pool starts (default one: entering the stack never
waits for a worker, and a request that comes before it is up waits for it, starting no other). A request that finds every worker of its
function busy starts another one (a cold start: it waits for the worker's imports) up to
`concurrency` per function; beyond, requests queue and a freed worker goes to the one waiting
longest (first come, first served: no request starves behind later ones). Workers stay warm until
the stack stops. Spawn imports the parent's main module again in each worker: a script must start
the stack under `if __name__ == "__main__":` (`refuse_while_bootstrapping` says so rather than let
each worker start a stack). A worker gets the stack's environment (AWS_ENDPOINT_URL to moto's
server, AWS_ENDPOINT_URL_DRS to the simulator, TABLE_NAME, POWERTOOLS_*, ...) and the log level,
and builds its clients the way the handlers do: boto3's default session, then `runtime.reset()`.

The stack's cloud fault layer (`local.faults.CloudFaults`, `stack.cloud`) stays the one place
that decides and counts: each worker installs `WorkerFaults` on its default session, a
CloudFaults whose decisions go to the main process over the worker's pipe, during the invocation
(the thread waiting for the invocation's answer serves them): what to draw (`_draw`: the armed
faults and the seeded RNG of `stack.cloud`, so arm / arm_rate / disarm / clear in the main
process apply at the worker's next call), what fired (`_fire`: counted in `stack.cloud.fired`
and `fired_by_operation`), what IAM denies (`stack.cloud.enforce_iam` and its policies, asked
with the worker's function as the calling function, so a refusal is counted as access_denied in
the main process) and each replayed transaction (`replayed`). The answers themselves (the
synthesised errors, the connect timeouts, the lost answers) are played in the worker, inside its
botocore, as they are in-process. DynamoDB's ClientRequestToken memory is per worker process:
botocore re-sends a transaction from the same client, hence the same process, so a re-send meets
the token it committed with (`no_retry`, the throttle code, account, region and the token window
are read from `stack.cloud` when a worker starts). The spoke roles' STS (`stack.cloud.sts`,
local/sts.py) is the main process's too: a worker's AssumeRole is decided and counted there
(`assume`), the keys it was issued are registered there (`issued`), and a call signed with them
asks whose they are and whether they are revoked (`caller`).

Hooks on the stack process's boto3 session do not see a worker's calls: `last_calls()` gives the
AWS API calls of the last invocation the calling thread made through `invoke`, as botocore's
`before-call` counted them in the worker.

A handler that raises answers the HTTP API's usual 500 (`HandlerError`); a worker that dies
during an invocation answers 500 too (`WorkerCrashed`, Lambda's answer when a runtime exits) and
is replaced by a new one. `stop()` stops every worker: idle ones are asked to exit, then every
process is joined with a timeout and terminated if it has not exited, so none outlives the stack.
"""

from __future__ import annotations

import contextlib
import logging
import multiprocessing
import os
import pickle
import signal
import sys
import threading
import traceback
import warnings
from collections import Counter, deque
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from multiprocessing.process import BaseProcess
from typing import Any

from local import serverless
from local.faults import CloudFaults
from local.sts import Caller

log = logging.getLogger("local-http-workers")
_SPAWN = multiprocessing.get_context("spawn")
BOOT_SECONDS = 120.0  # a worker that has not imported its handler by then is given up
POLL_SECONDS = 1.0


class HandlerError(Exception):
    """The function's handler raised in its worker (the HTTP API answers 500)."""


class WorkerCrashed(Exception):
    """The worker running the invocation died (the HTTP API answers 500; a new worker replaces it)."""


# ------------------------------------------------------------------------------- in the worker


class WorkerFaults(CloudFaults):
    """A worker's fault layer: the main process's CloudFaults draws, counts and checks IAM.

    `rpc(method, *args)` asks the main process (`HttpWorkers._answer`). Only the decisions and
    the counters go there; the rest (the synthesised answers, which answer was ours, the
    committed ClientRequestTokens) is this process's, as it belongs to its clients."""

    def __init__(self, rpc: Callable[..., Any], function: str, settings: Mapping[str, Any]) -> None:
        super().__init__(
            no_retry=settings["no_retry"],
            iam=lambda caller, operation, params: list(rpc("denied", caller, operation, params)),
            current_function=lambda: function,
            dynamodb_throttle=settings["dynamodb_throttle"],
            account=settings["account"],
            region=settings["region"],
        )
        self.token_window_seconds = settings["token_window_seconds"]
        self.enforce_iam = True  # always ask: the main process knows whether IAM is enforced
        self._rpc = rpc
        self._spoke_keys: set[str] = set()  # access keys this worker's AssumeRole calls were issued

    def _assume_refusal(
        self, caller: str, function: str, params: dict[str, Any], iam_denied: bool
    ) -> str | None:
        wanted = {key: params[key] for key in ("RoleArn", "ExternalId", "RoleSessionName") if key in params}
        refused: str | None = self._rpc("assume", caller, function, wanted, iam_denied)
        return refused

    def _note_issued(self, access_key: str, role: str, session_arn: str, function: str) -> None:
        self._spoke_keys.add(access_key)
        self._rpc("issued", access_key, role, session_arn, function)

    def _spoke_caller(self, access_key: str | None) -> Caller | None:
        if access_key is None or access_key not in self._spoke_keys:
            return None  # the function's own credentials: no need to ask
        found: Caller | None = self._rpc("caller", access_key)
        return found

    def _draw(self, kinds: Iterable[str], service: str, operation: str) -> str | None:
        drawn: str | None = self._rpc("draw", tuple(kinds), service, operation)
        return drawn

    def _fire(self, kind: str, operation: str) -> None:
        self._rpc("fire", kind, operation)

    def _token_replay(self, request: Any) -> Any:
        before = self.replayed
        answer = super()._token_replay(request)
        if self.replayed != before:
            self._rpc("replayed")
        return answer


class _Channel:
    """The worker's end of its pipe, for calls to the main process (thread-safe)."""

    def __init__(self, connection: Connection) -> None:
        self._connection = connection
        self._lock = threading.Lock()

    def __call__(self, method: str, *args: Any) -> Any:
        with self._lock:
            self._connection.send(("call", method, args))
            reply = self._connection.recv()
        if reply[0] != "answer":
            raise RuntimeError(f"the stack could not answer {method}: {reply[1]}")
        return reply[1]


def serve(
    spec: serverless.Function, connection: Connection, environment: dict[str, str], setup: dict[str, Any]
) -> None:
    """A worker's life (the spawned process's target): set up as a Lambda execution environment
    would, say "ready", then handle one invocation at a time until told to stop or orphaned."""
    function = spec.name
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the stack's to handle: it stops us
    os.environ.clear()
    os.environ.update(environment)
    import boto3  # noqa: PLC0415 (after the environment is the stack's)

    from local.lambda_events import LambdaContext  # noqa: PLC0415
    from reconciler import runtime  # noqa: PLC0415
    from reconciler.observability import logger  # noqa: PLC0415

    logger.setLevel(setup["log_level"])
    warnings.filterwarnings("ignore", message="No application metrics to publish")
    boto3.setup_default_session()
    assert boto3.DEFAULT_SESSION is not None
    WorkerFaults(_Channel(connection), function, setup["faults"]).install(boto3.DEFAULT_SESSION.events)
    calls: list[str] = []  # this invocation's AWS API calls, as botocore's `before-call` counts them
    boto3.DEFAULT_SESSION.events.register(
        "before-call", lambda model, **_: calls.append(f"{model.service_model.service_name}:{model.name}")
    )
    runtime.reset()
    handler = spec.load()
    connection.send(("ready", os.getpid()))
    while True:
        try:
            message = connection.recv()
        except (EOFError, OSError):  # the stack went away
            message = ("stop",)
        if message[0] != "invoke":
            # Lambda ends an environment without a word: skip the interpreter's slow finalisation
            # (this process holds nothing to save; its output is flushed)
            sys.stdout.flush()
            sys.stderr.flush()
            os._exit(0)
        calls.clear()
        try:
            reply: tuple[Any, ...] = ("result", handler(message[1], LambdaContext(function_name=function)))
        except Exception as error:
            reply = ("raised", f"{type(error).__name__}: {error}", traceback.format_exc())
        made = dict(Counter(calls))
        try:
            connection.send((*reply, made))
        except (pickle.PicklingError, TypeError, ValueError, AttributeError) as error:  # unpicklable
            connection.send(("raised", f"unpicklable result: {error}", traceback.format_exc(), made))


# ------------------------------------------------------------------------------- in the stack


def refuse_while_bootstrapping() -> None:
    """Raise when called while a spawned worker imports its parent's main module: spawn re-imports
    it in every worker, so a script that starts the stack outside `if __name__ == "__main__":`
    would start a stack in every worker, which would start workers of its own, forever."""
    if getattr(multiprocessing.current_process(), "_inheriting", False):
        raise RuntimeError(
            "a live stack was started while a worker process imported the main module: start it "
            'under `if __name__ == "__main__":` (multiprocessing\'s spawn re-imports that module)'
        )


@dataclass(eq=False)
class _Worker:
    function: str
    process: BaseProcess
    connection: Connection
    pid: int = 0
    invocations: int = 0


class _Ticket:
    """A request waiting for a worker of its function: served in arrival order."""

    worker: _Worker | None = None


@dataclass
class _Pool:
    """One function's workers: idle (warm), busy, and on their way (starting); and the requests
    waiting for one, first come first served (a free worker goes to the longest waiting)."""

    function: str
    idle: list[_Worker] = field(default_factory=list)
    busy: set[_Worker] = field(default_factory=set)
    starting: int = 0
    queue: deque[_Ticket] = field(default_factory=deque)
    start_failures: int = 0
    start_error: str = ""

    @property
    def size(self) -> int:
        return len(self.idle) + len(self.busy) + self.starting


class HttpWorkers:
    """Worker processes for serverless.yml's HTTP functions; `invoke` is `LocalEventBus.invoke`'s
    path for them. `start(environment)` once the stack's environment is set, `stop()` at the end."""

    def __init__(
        self,
        faults: CloudFaults,
        *,
        concurrency: int = 4,
        prewarm: int = 1,
        log_level: str = "ERROR",
        stop_timeout: float = 5.0,
    ) -> None:
        if concurrency < 1:
            raise ValueError("concurrency must be at least 1 (workers per HTTP function)")
        self.faults = faults
        self.concurrency = concurrency
        self.prewarm = max(0, min(prewarm, concurrency))
        self.log_level = log_level
        self.stop_timeout = stop_timeout
        self._specs = {name: spec for name, spec in serverless.functions().items() if spec.serves_http}
        self.functions = set(self._specs)
        self._pools = {name: _Pool(name) for name in sorted(self.functions)}
        self._changed = threading.Condition()
        self._processes: list[BaseProcess] = []
        self._environment: dict[str, str] | None = None
        self._closed = False
        self._local = threading.local()  # per invoking thread: its last invocation's AWS calls
        # Messages from workers, worker starts, seconds of a worker's imports: what `LiveStack.http`
        # watches (a bare counter: an increment lost between threads changes nothing it is for)
        self._activity = 0

    # ---------------------------------------------------------------- lifecycle

    def start(self, environment: Mapping[str, str]) -> None:
        """Take the stack's environment for every worker, and start the prewarmed ones (in the
        background: nothing here waits for a worker)."""
        refuse_while_bootstrapping()
        with self._changed:
            self._environment = dict(environment)
            for pool in self._pools.values():
                for _ in range(self.prewarm - pool.size):
                    self._launch(pool)

    def stop(self) -> None:
        """Stop every worker and wait for it (a request in flight is answered 500)."""
        with self._changed:
            self._closed = True
            processes = list(self._processes)
            idle = [worker for pool in self._pools.values() for worker in pool.idle]
            for pool in self._pools.values():
                pool.idle.clear()
            self._changed.notify_all()
        for worker in idle:
            with contextlib.suppress(OSError, ValueError):
                worker.connection.send(("stop",))
        idle_processes = {id(worker.process) for worker in idle}
        for process in processes:  # busy or still importing: no reason to wait for them
            if id(process) not in idle_processes and process.is_alive():
                process.terminate()
        for process in processes:
            process.join(self.stop_timeout)
            if process.is_alive():
                process.terminate()
                process.join(1.0)
            if process.is_alive():
                process.kill()
                process.join(1.0)
        for worker in idle:
            worker.connection.close()

    def _launch(self, pool: _Pool) -> None:
        """Start one worker of `pool` in the background (call with `_changed` held)."""
        pool.starting += 1
        threading.Thread(target=self._boot, args=(pool,), name=f"boot-{pool.function}", daemon=True).start()

    def _boot(self, pool: _Pool) -> None:
        """Start one worker process and wait for it to say ready (a boot thread of its own)."""
        pid, problem, process = None, "", None
        parent, child = _SPAWN.Pipe()
        try:
            process = _SPAWN.Process(
                target=serve,
                args=(
                    self._specs[pool.function],
                    child,
                    self._environment or dict(os.environ),
                    self._setup(),
                ),
                name=f"lambda-{pool.function}",
                daemon=True,
            )
            with self._changed:
                if self._closed:
                    process = None
                else:
                    process.start()
                    self._processes.append(process)
            child.close()
            if process is not None:
                pid = self._await_ready(parent, process)
                problem = f"the {pool.function} worker exited while starting (code {process.exitcode})"
        except Exception as error:  # could not even start it
            problem = f"the {pool.function} worker could not start: {type(error).__name__}: {error}"
        with self._changed:
            pool.starting -= 1
            if pid is not None and process is not None and not self._closed:
                self._offer(pool, _Worker(pool.function, process, parent, pid))
                self._activity += 1
            else:
                if problem and not self._closed:
                    pool.start_failures += 1
                    pool.start_error = problem
                    log.error(problem)
                parent.close()
            self._changed.notify_all()

    def _await_ready(self, parent: Connection, process: BaseProcess) -> int | None:
        """The worker's pid once it has imported its handler; None when it died or hung."""
        waited = 0.0
        try:
            while not parent.poll(POLL_SECONDS):
                waited += POLL_SECONDS
                if not process.is_alive() or waited > BOOT_SECONDS:
                    break
                self._activity += 1  # still importing: the stack is working on it
            else:
                message = parent.recv()
                if message[0] == "ready":
                    return int(message[1])
        except (EOFError, OSError):
            pass
        if process.is_alive():
            process.terminate()
        process.join(self.stop_timeout)
        return None

    def _setup(self) -> dict[str, Any]:
        faults = self.faults
        return {
            "log_level": self.log_level,
            "faults": {
                "no_retry": tuple(faults.no_retry),
                "dynamodb_throttle": faults._dynamodb_throttle,
                "account": faults._account,
                "region": faults._region,
                "token_window_seconds": faults.token_window_seconds,
            },
        }

    # ---------------------------------------------------------------- invocations

    def serves(self, function: str) -> bool:
        return function in self.functions

    def invoke(self, function: str, event: dict[str, Any]) -> Any:
        """Run one invocation of `function` in one of its workers; its result, or HandlerError
        (the handler raised) or WorkerCrashed (the worker died; it is replaced)."""
        pool = self._pools[function]
        self._local.calls = Counter()
        worker = self._acquire(pool)
        healthy = False
        try:
            result = self._run(worker, event)
            healthy = True
            return result
        except HandlerError:
            healthy = True
            raise
        finally:
            self._release(pool, worker, healthy)

    def _acquire(self, pool: _Pool) -> _Worker:
        with self._changed:
            while pool.idle and not pool.queue:
                worker = pool.idle.pop()  # the most recently used: warm, as Lambda picks
                if worker.process.is_alive():
                    pool.busy.add(worker)
                    return worker
                self._lost(pool, worker)
            failures = pool.start_failures
            ticket = _Ticket()
            pool.queue.append(ticket)
            try:
                while ticket.worker is None:
                    if self._closed:
                        raise WorkerCrashed(f"the stack is stopping: no {pool.function} worker")
                    if pool.start_failures > failures:
                        raise WorkerCrashed(pool.start_error)
                    if len(pool.queue) > pool.starting and pool.size < self.concurrency:
                        self._launch(pool)  # a cold start
                        continue
                    self._changed.wait()
                return ticket.worker
            finally:
                if ticket.worker is None:
                    pool.queue.remove(ticket)

    def _offer(self, pool: _Pool, worker: _Worker) -> None:
        """A worker is free: to the longest waiting request, or idle (call with `_changed` held)."""
        if pool.queue:
            pool.queue.popleft().worker = worker
            pool.busy.add(worker)
        else:
            pool.idle.append(worker)
        self._changed.notify_all()

    def _release(self, pool: _Pool, worker: _Worker, healthy: bool) -> None:
        with self._changed:
            pool.busy.discard(worker)
            if healthy and not self._closed:
                self._offer(pool, worker)
                return
            self._lost(pool, worker)
            if not self._closed:
                self._launch(pool)  # replaced at once
            self._changed.notify_all()

    def _lost(self, pool: _Pool, worker: _Worker) -> None:
        """Forget a dead worker, or one whose pipe broke (call with `_changed` held)."""
        worker.connection.close()
        if worker.process.is_alive():  # it cannot be trusted with another invocation
            worker.process.terminate()
        worker.process.join(self.stop_timeout)
        if not self._closed:
            log.warning("%s worker %d exited (code %s)", pool.function, worker.pid, worker.process.exitcode)

    def _run(self, worker: _Worker, event: dict[str, Any]) -> Any:
        """Send the event; answer the worker's calls (faults, IAM) until its result comes."""
        worker.invocations += 1
        try:
            worker.connection.send(("invoke", event))
            while True:
                message = worker.connection.recv()
                self._activity += 1
                if message[0] == "call":
                    worker.connection.send(self._answer(worker.function, message[1], message[2]))
                    continue
                break
        except (EOFError, OSError) as error:
            worker.process.join(self.stop_timeout)
            raise WorkerCrashed(
                f"the {worker.function} worker (pid {worker.pid}) exited during the invocation "
                f"(code {worker.process.exitcode})"
            ) from error
        self._local.calls = Counter(message[-1])
        if message[0] == "raised":
            raise HandlerError(f"{worker.function} raised {message[1]}\n(in its worker) {message[2]}")
        return message[1]

    def _answer(self, function: str, method: str, args: tuple[Any, ...]) -> tuple[str, Any]:
        """A worker's call to the stack's CloudFaults (see the module docstring)."""
        faults = self.faults
        try:
            if method == "draw":
                return "answer", faults._draw(*args)
            if method == "fire":
                faults._fire(*args)
                return "answer", None
            if method == "denied":
                iam = faults._iam
                caller, operation, params = args
                return "answer", (iam(caller, operation, params) if faults.enforce_iam and iam else [])
            if method == "replayed":
                with faults._lock:
                    faults.replayed += 1
                return "answer", None
            if method == "assume":
                return "answer", faults._assume_refusal(*args)
            if method == "issued":
                faults._note_issued(*args)
                return "answer", None
            if method == "caller":
                return "answer", faults._spoke_caller(*args)
            return "failed", f"no such call {method!r}"
        except Exception as error:
            log.exception("%s's call %s failed", function, method)
            return "failed", f"{type(error).__name__}: {error}"

    # ---------------------------------------------------------------- for tools and tests

    def activity(self) -> int:
        """A number that grows while workers make progress (a message, a start, an import)."""
        return self._activity

    def last_calls(self) -> Counter[str]:
        """The AWS API calls ("service:Operation" -> count, as botocore's `before-call` sees them)
        that the last invocation this thread made through `invoke` made in its worker: hooks on
        this process's boto3 session do not see a worker's calls."""
        return Counter(getattr(self._local, "calls", Counter()))

    def pids(self, function: str) -> dict[str, list[int]]:
        """The pids of `function`'s idle and busy workers."""
        with self._changed:
            pool = self._pools[function]
            return {"idle": [w.pid for w in pool.idle], "busy": sorted(w.pid for w in pool.busy)}

    def wait_ready(self, function: str, count: int = 1, timeout: float = 60.0) -> bool:
        """Wait until `count` workers of `function` are up (warm), counting those started with
        the pool (`prewarm`) or since; False after `timeout` s. For a tool that measures warm
        requests: start the stack with `http_prewarm` workers, then wait for them."""
        pool = self._pools[function]
        with self._changed:
            return self._changed.wait_for(lambda: len(pool.idle) + len(pool.busy) >= count, timeout)
