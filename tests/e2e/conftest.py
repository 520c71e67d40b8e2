"""The service as a real process: `python -m app.cli serve` on a free 127.0.0.1 port.

Each test gets its own fresh database (`database_url`) and its own server process, which it can
stop gracefully (SIGTERM), kill (SIGKILL) and start again against the same database. The
process's stderr (its JSON logs) goes to a file that is printed when the test fails. Postgres is
the session's shared server: only the service is ever stopped or killed, never Postgres.
"""

import asyncio
import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Generator, Iterator
from pathlib import Path
from typing import Any, Literal

import asyncpg
import httpx
import pytest

ADMIN_KEY = "e2e-admin-key"
SECRETS_KEY = "ZTJlLXNlY3JldHMta2V5LWZvci13ZWJob29rcy0zMiE="  # Fernet: 32 bytes, base64
ADMIN = {"Authorization": f"Bearer {ADMIN_KEY}"}
#: The drills bid as these lenders, funded through the API once the service first starts;
#: tests about money use other names and fund them themselves.
FUNDED_LENDERS = (
    *(f"lender-{i}" for i in range(40)), "amy", "ann", "ben", "bea", "bob", "cat", "dan",
    "late-lender", "minnow", "whale", "zed", "stalled", "queued",
)
FUNDS = 10**12
ROOT = Path(__file__).resolve().parents[2]

_READY_TIMEOUT_S = 30.0
_EXIT_TIMEOUT_S = 20.0
_LOG_TAIL_CHARS = 30_000

_reports = pytest.StashKey[dict[str, pytest.TestReport]]()


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    """Keep each phase's report on the item, so a fixture can tell that its test failed."""
    report = yield
    item.stash.setdefault(_reports, {})[report.when] = report
    return report


async def until_ready(
    base_url: str, process: "subprocess.Popen[bytes]", log: Path, seconds: float = 60.0
) -> None:
    """Poll `/readyz` until 200; fail with the process's log if it exits or time runs out (an
    embedded PostgreSQL may be initialised first)."""
    deadline = time.monotonic() + seconds
    async with httpx.AsyncClient(base_url=base_url, timeout=2.0) as probe:
        while True:
            assert process.poll() is None, log.read_text(errors="replace")
            assert time.monotonic() < deadline, log.read_text(errors="replace")
            try:
                if (await probe.get("/readyz")).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            await asyncio.sleep(0.1)


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class ServiceProcess:
    """One `loan-auction serve` at a time, restartable against the same database."""

    def __init__(self, database_url: str, log_path: Path, data_dir: Path, **env: str) -> None:
        #: the module run as `python -m <module> serve` (a drill may run a test-only wrapper)
        self.module = "app.cli"
        self.database_url = database_url
        self.log_path = log_path
        self.data_dir = data_dir
        self.extra_env = env
        self.port = free_port()
        self.process: subprocess.Popen[bytes] | None = None
        self.starts = 0
        self.signalled = False  # the last exit, if any, was one this fixture asked for
        #: Log lines a test expects at error level (substrings), e.g. a fenced-out writer's
        #: failed journal batch; `log_problems` leaves them out.
        self.expected_errors: list[str] = []

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def client(self, **kwargs: Any) -> httpx.AsyncClient:
        """A keep-alive client for this process (a fresh one is needed after a restart)."""
        limits = httpx.Limits(max_connections=128, max_keepalive_connections=128)
        options: dict[str, Any] = {"timeout": 10.0, "limits": limits, **kwargs}
        return httpx.AsyncClient(base_url=self.base_url, headers=ADMIN, **options)

    async def start(self, expect: "Expect" = "writer") -> float:
        """Start the process and wait (bounded) until /readyz answers 200 (the writer), or 503
        `standby` (a standby), or either; returns seconds."""
        assert not self.running, "already running"
        started = time.monotonic()
        for _ in range(3):
            self._spawn()
            if await self._wait_ready(expect):
                return time.monotonic() - started
            if self.running or "address already in use" not in self.log_tail(4_000).lower():
                break
            self.port = free_port()  # lost a race for the port: try another one
        await self.kill()
        raise AssertionError(f"service not ready within {_READY_TIMEOUT_S} s:\n{self.log_tail()}")

    async def stop(self) -> int:
        """SIGTERM: the graceful path (flush the journal, then exit). Returns the exit code."""
        return await self._signal(signal.SIGTERM)

    async def kill(self) -> int:
        """SIGKILL: a crash. Returns the exit code (negative signal number)."""
        return await self._signal(signal.SIGKILL)

    def pause(self) -> None:
        """SIGSTOP: the process stays alive and holds its sockets and sessions, but runs nothing."""
        assert self.process is not None and self.running
        self.process.send_signal(signal.SIGSTOP)

    def resume(self) -> None:
        assert self.process is not None and self.running
        self.process.send_signal(signal.SIGCONT)

    async def readyz(self) -> tuple[int, dict[str, Any]]:
        async with httpx.AsyncClient(base_url=self.base_url, timeout=2.0) as probe:
            response = await probe.get("/readyz")
        body: dict[str, Any] = response.json()
        return response.status_code, body

    async def ready(self) -> bool:
        return (await self.readyz())[0] == 200

    async def restart(self, graceful: bool = False) -> float:
        await (self.stop() if graceful else self.kill())
        return await self.start()

    def exited_by_itself(self) -> bool:
        return self.process is not None and not self.running and not self.signalled

    def log_problems(self) -> list[str]:
        """Error-level log lines and tracebacks: a passing run has none."""
        if not self.log_path.exists():
            return []
        return [
            line for line in self.log_path.read_text(errors="replace").splitlines()
            if ('"level":"error"' in line or '"level":"critical"' in line or "Traceback" in line)
            and not any(expected in line for expected in self.expected_errors)
        ]

    def log_tail(self, chars: int = _LOG_TAIL_CHARS) -> str:
        if not self.log_path.exists():
            return "(no log)"
        text = self.log_path.read_text(errors="replace")
        return text if len(text) <= chars else "...\n" + text[-chars:]

    # --- internals --------------------------------------------------------------------------

    def _spawn(self) -> None:
        self.starts += 1
        self.signalled = False
        env = {
            **os.environ,
            "DATABASE_URL": self.database_url,
            "LOAN_AUCTION_ADMIN_KEY": ADMIN_KEY,
            "LOAN_AUCTION_SECRETS_KEY": SECRETS_KEY,
            "LOAN_AUCTION_DATA_DIR": str(self.data_dir),
            "PYTHONUNBUFFERED": "1",
            **self.extra_env,
        }
        with self.log_path.open("ab") as log:
            log.write(f"\n===== start #{self.starts} on port {self.port} =====\n".encode())
            log.flush()
            self.process = subprocess.Popen(
                [sys.executable, "-m", self.module, "serve", "--host", "127.0.0.1",
                 "--port", str(self.port)],
                cwd=ROOT, env=env, stdin=subprocess.DEVNULL, stdout=log, stderr=log,
                start_new_session=True, preexec_fn=_die_with_parent,
            )

    async def _wait_ready(self, expect: "Expect") -> bool:
        deadline = time.monotonic() + _READY_TIMEOUT_S
        async with httpx.AsyncClient(base_url=self.base_url, timeout=2.0) as probe:
            while time.monotonic() < deadline:
                if not self.running:
                    return False
                try:
                    response = await probe.get("/readyz")
                    writer = response.status_code == 200
                    standby = response.status_code == 503 and response.json()["code"] == "standby"
                    if (writer and expect != "standby") or (standby and expect != "writer"):
                        return True
                except httpx.TransportError:
                    pass
                await asyncio.sleep(0.05)
        return False

    async def _signal(self, sig: signal.Signals) -> int:
        process = self.process
        assert process is not None, "never started"
        assert not self.exited_by_itself(), f"the service died on its own:\n{self.log_tail()}"
        self.signalled = True
        if process.poll() is None:
            process.send_signal(sig)
        deadline = time.monotonic() + _EXIT_TIMEOUT_S
        while process.poll() is None and time.monotonic() < deadline:
            await asyncio.sleep(0.02)
        if process.poll() is None:
            process.kill()
            process.wait(timeout=5)
            raise AssertionError(f"service ignored {sig.name} for {_EXIT_TIMEOUT_S} s")
        with self.log_path.open("ab") as log:
            log.write(f"===== {sig.name}: exit code {process.returncode} =====\n".encode())
        return process.returncode


Expect = Literal["writer", "standby", "either"]


def _die_with_parent() -> None:
    """In the child, before exec: SIGKILL it if pytest dies, so no server outlives a run."""
    if sys.platform == "linux":
        import ctypes

        pr_set_pdeathsig = 1
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(pr_set_pdeathsig, signal.SIGKILL)


#: For modules that drive load through one key (override `service_env` with it): the abuse
#: limits, on by default, would answer 429 to the load itself.
UNLIMITED = {
    "LOAN_AUCTION_RATE_LIMIT_PER_S": "0", "LOAN_AUCTION_RATE_LIMIT_UNAUTHENTICATED_PER_S": "0",
}


@pytest.fixture
def service_env() -> dict[str, str]:
    """Extra environment for the `service` fixture's process; a module may override it."""
    return {}


@pytest.fixture
def service_module() -> str:
    """The module the `service` fixture runs as `python -m <module> serve`; a module may
    override it with a test-only wrapper (tests/e2e/held_answers.py)."""
    return "app.cli"


@pytest.fixture
async def service(
    request: pytest.FixtureRequest, database_url: str, tmp_path: Path, service_env: dict[str, str],
    service_module: str,
) -> AsyncIterator[ServiceProcess]:
    """A running service on a fresh database; killed afterwards, its log printed on failure.

    After a passing test it also checks that the process did not die on its own and logged no
    errors or tracebacks (a crashed background task would otherwise go unnoticed).
    """
    running = ServiceProcess(
        database_url, tmp_path / "service.log", tmp_path / "data", **service_env
    )
    running.module = service_module
    async with _checked(request, [running]):
        await running.start()
        async with running.client() as client:
            await fund(client, *FUNDED_LENDERS)
        yield running


class Fleet:
    """Several instances on one database: a writer and its standbys. Nothing starts by itself."""

    def __init__(self, database_url: str, folder: Path) -> None:
        self.database_url = database_url
        self.folder = folder
        self.members: list[ServiceProcess] = []

    def add(self, name: str, database_url: str | None = None, **env: str) -> ServiceProcess:
        """A member; the drills drive load through one key, so the abuse limits are off."""
        member = ServiceProcess(
            database_url or self.database_url, self.folder / f"{name}.log",
            self.folder / f"data-{name}", **{**UNLIMITED, **env},
        )
        self.members.append(member)
        return member

    async def fund(self, writer: ServiceProcess) -> None:
        """Put the lenders' money in custody, through the first writer."""
        async with writer.client() as client:
            await fund(client, *FUNDED_LENDERS)


@pytest.fixture
async def fleet(
    request: pytest.FixtureRequest, database_url: str, tmp_path: Path
) -> AsyncIterator[Fleet]:
    """Instances the test adds and starts; each is checked and killed as `service` is."""
    found = Fleet(database_url, tmp_path)
    async with _checked(request, found.members):
        yield found


@contextlib.asynccontextmanager
async def _checked(
    request: pytest.FixtureRequest, members: list[ServiceProcess]
) -> AsyncIterator[None]:
    problems: list[str] = []
    try:
        yield
        for running in members:
            if running.exited_by_itself():
                assert running.process is not None
                problems.append(
                    f"{running.log_path.name} exited on its own: {running.process.returncode}"
                )
            problems += running.log_problems()
    finally:
        for running in members:
            if running.running:
                await running.kill()
        reports = request.node.stash.get(_reports, {})
        if problems or any(report.failed for report in reports.values()):
            for running in members:
                print(f"\n----- service log ({running.log_path}) -----\n{running.log_tail()}")
    assert not problems, "the service misbehaved: " + "\n".join(problems[:10])


async def fund(client: httpx.AsyncClient, *accounts: str, amount: int = FUNDS) -> None:
    """Deposit `amount` into each account, as the platform's payment side would, with an admin
    key of its own (so funding does not spend the test's rate-limit budget)."""
    minted = await client.post("/v1/api-keys", json={"role": "admin", "subject": "payments"})
    assert minted.status_code == 201, minted.text
    payments = {"Authorization": f"Bearer {minted.json()['key']}"}
    for account in accounts:
        response = await client.post(
            f"/v1/accounts/{account}/deposits", headers=payments,
            json={"amount": amount, "reference": "e2e"},
        )
        assert response.status_code == 201, response.text


@pytest.fixture
async def db(database_url: str) -> AsyncIterator["asyncpg.Connection[asyncpg.Record]"]:
    """A direct connection to the test's database, to check what is really stored."""
    conn = await asyncpg.connect(database_url)
    try:
        yield conn
    finally:
        await conn.close()


@pytest.fixture
def rng_seed() -> Iterator[int]:
    """A seed per test, printed so a failing random drill can be replayed."""
    seed = int(os.environ.get("LOAN_AUCTION_E2E_SEED", str(time.time_ns() % 2**32)))
    print(f"seed={seed} (set LOAN_AUCTION_E2E_SEED to replay)")
    yield seed
