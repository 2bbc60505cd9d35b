"""Fixtures of the reliability battery: dynalite, a second DynamoDB implementation (Node, LevelDB).

The fidelity tests run the same conditional-write races on moto and on dynalite. dynalite is
pinned in package.json/package-lock.json; the fixture installs it (`npm ci`) when node_modules is
missing, starts it on loopback on a free port, waits until it answers ListTables, and stops it
at the end of the session. Without Node.js and npm it fails with a message: a silent skip would
let the fidelity check vanish from every run.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
from collections.abc import Iterator
from pathlib import Path

import boto3
import pytest
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from local.waiting import wait_until

ROOT = Path(__file__).resolve().parents[2]
DYNALITE = ROOT / "node_modules" / ".bin" / "dynalite"
NPM_TIMEOUT = 300


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def _install() -> None:
    """`npm ci` from the committed lockfile (the test set-up starts what it needs)."""
    missing = [tool for tool in ("node", "npm") if shutil.which(tool) is None]
    if missing:
        pytest.fail(
            f"dynalite (the fidelity tests' second DynamoDB) needs Node.js and npm; {' and '.join(missing)} "
            "not found on PATH. Install Node.js 18+ with npm (e.g. `apt-get install nodejs npm`).",
            pytrace=False,
        )
    if DYNALITE.exists():
        return
    done = subprocess.run(
        ["npm", "ci", "--no-audit", "--no-fund"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=NPM_TIMEOUT,
        check=False,
    )
    if done.returncode != 0 or not DYNALITE.exists():
        pytest.fail(f"`npm ci` could not install dynalite:\n{done.stdout}\n{done.stderr}", pytrace=False)


@pytest.fixture(scope="session")
def dynalite() -> Iterator[str]:
    """dynalite's endpoint URL (in memory, loopback only, tables ACTIVE at once)."""
    _install()
    port = _free_port()
    process = subprocess.Popen(
        [str(DYNALITE), "--host", "127.0.0.1", "--port", str(port), *("--createTableMs", "0")],
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    url = f"http://127.0.0.1:{port}"
    probe = boto3.session.Session().client(
        "dynamodb",
        endpoint_url=url,
        region_name="us-east-1",
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
        config=Config(retries={"total_max_attempts": 1}, connect_timeout=1, read_timeout=2),
    )
    errors: list[Exception] = []

    def answers() -> bool:
        if process.poll() is not None:
            pytest.fail(
                f"dynalite exited with {process.returncode}: {process.stderr.read() if process.stderr else ''}",
                pytrace=False,
            )
        try:
            probe.list_tables()
        except (BotoCoreError, ClientError) as error:
            errors.append(error)
            return False
        return True

    try:
        # Node starts in a second or two; far more on a loaded machine: a hang guard only
        wait_until(answers, what=lambda: f"dynalite to answer on {url} (last error: {errors[-1:]})")
        yield url
    finally:
        process.terminate()
        try:
            process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=5)
