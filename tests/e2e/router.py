"""nginx in front of the instances, with `deploy/nginx.conf` itself as its configuration.

The reference config names the compose hosts; the tests swap in 127.0.0.1 ports and give nginx
its own prefix, pid, logs and temp folders under the test's temporary folder, and run it in the
foreground (`daemon off`) as a child of the test. nginx missing is a failure, never a skip:
`.ci/run` installs Debian's nginx-light.
"""

import asyncio
import os
import pwd
import re
import shutil
import signal
import subprocess
import time
from pathlib import Path

import httpx

from tests.e2e.conftest import ROOT, free_port

REFERENCE = ROOT / "deploy" / "nginx.conf"
_UPSTREAMS = ("auction-1:8000", "auction-2:8000")


def nginx_binary() -> str:
    found = shutil.which("nginx") or next(
        (p for p in ("/usr/sbin/nginx", "/usr/local/sbin/nginx") if os.access(p, os.X_OK)), None
    )
    assert found, "nginx is not installed (.ci/run installs Debian's nginx-light)"
    return found


def router_config(reference: str, ports: list[int], listen: int, folder: Path) -> str:
    """The reference config, pointed at local ports, with every path inside `folder`, and
    an X-Upstream header naming the instances each request went to."""
    assert len(ports) == len(_UPSTREAMS)
    text = reference
    for host, port in zip(_UPSTREAMS, ports, strict=True):
        assert f"server {host} " in text, f"{host} is not an upstream of {REFERENCE}"
        text = text.replace(f"server {host} ", f"server 127.0.0.1:{port} ")
    text, listens = re.subn(r"listen 8080;", f"listen 127.0.0.1:{listen};", text)
    assert listens == 1, f"{REFERENCE} should listen on 8080 once"
    local = "\n".join([
        "    log_format tries '$status $request_method $upstream_addr $upstream_status';",
        f"    access_log {folder / 'access.log'} tries;",
        *(f"    {directive} {folder / name};" for directive, name in (
            ("client_body_temp_path", "client_body"),
            ("proxy_temp_path", "proxy"), ("fastcgi_temp_path", "fastcgi"),
            ("uwsgi_temp_path", "uwsgi"), ("scgi_temp_path", "scgi"),
        )),
        # which instances a request tried, the last one answering: "127.0.0.1:a, 127.0.0.1:b"
        "    add_header X-Upstream $upstream_addr always;",
    ])
    text, blocks = re.subn(r"^http \{$", "http {\n" + local, text, flags=re.MULTILINE)
    assert blocks == 1
    return text


class Router:
    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.port = free_port()
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def start(self, upstream_ports: list[int]) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        conf = self.folder / "nginx.conf"
        config = router_config(REFERENCE.read_text(), upstream_ports, self.port, self.folder)
        conf.write_text(config)
        globals_ = f"daemon off; pid {self.folder / 'nginx.pid'};"
        if os.geteuid() == 0:  # workers would run as "nobody", locked out of the temp folder
            globals_ += f" user {pwd.getpwuid(0).pw_name};"
        argv = [nginx_binary(), "-p", str(self.folder), "-c", str(conf), "-e",
                str(self.folder / "error.log"), "-g", globals_]
        checked = subprocess.run([*argv, "-t"], capture_output=True, text=True, check=False)
        assert checked.returncode == 0, checked.stderr
        self.process = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                        stderr=subprocess.DEVNULL, start_new_session=True)
        deadline = time.monotonic() + 10
        async with httpx.AsyncClient(base_url=self.base_url, timeout=2.0) as probe:
            while True:
                assert self.process.poll() is None, self.error_log()
                try:
                    await probe.get("/healthz")
                    return
                except httpx.TransportError:
                    assert time.monotonic() < deadline, "nginx did not listen:\n" + self.error_log()
                    await asyncio.sleep(0.05)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGQUIT)  # graceful: finish requests in flight
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=5)

    def error_log(self) -> str:
        path = self.folder / "error.log"
        return path.read_text(errors="replace")[-5_000:] if path.exists() else "(no log)"
