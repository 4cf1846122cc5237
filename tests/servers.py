"""Real servers for tests: a MariaDB instance and a Milvus Lite gRPC server, started in temp dirs.

MariaDB: set TEST_MYSQL_HOST (+ TEST_MYSQL_PORT/USER/PWD) to use a running server; otherwise, as root
with Debian's mariadb-server installed, a private instance is started. Without either the MariaDB tests
skip, unless REQUIRE_MARIADB=1 (CI), where they fail.
"""
from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_for_port(port: int, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        with socket.socket() as sock:
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.1)
    raise TimeoutError(f"nothing listens on port {port} after {timeout_s}s")


@dataclass
class MariaDB:
    host: str
    port: int
    user: str
    password: str
    process: subprocess.Popen | None = None
    socket_path: Path | None = None

    def stop(self) -> None:
        if self.process is None:
            return
        subprocess.run(["mariadb-admin", f"--socket={self.socket_path}", "shutdown"], check=False,
                       capture_output=True, timeout=60)
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.process.kill()


def mariadb_available() -> bool:
    return bool(os.environ.get("TEST_MYSQL_HOST")) or (
        shutil.which("mysqld_safe") is not None and shutil.which("mariadb-install-db") is not None
        and os.geteuid() == 0)


def start_mariadb(workdir: Path) -> MariaDB:
    if os.environ.get("TEST_MYSQL_HOST"):
        return MariaDB(os.environ["TEST_MYSQL_HOST"], int(os.environ.get("TEST_MYSQL_PORT", "3306")),
                       os.environ.get("TEST_MYSQL_USER", "root"), os.environ.get("TEST_MYSQL_PWD", ""))
    datadir, sock, port = workdir / "data", workdir / "mysqld.sock", free_port()
    subprocess.run(["mariadb-install-db", "--user=root", f"--datadir={datadir}",
                    "--auth-root-authentication-method=socket", "--skip-test-db"],
                   check=True, capture_output=True, timeout=120)
    process = subprocess.Popen(
        ["mysqld_safe", "--no-defaults", "--user=root", f"--datadir={datadir}", f"--socket={sock}",
         f"--port={port}", "--bind-address=127.0.0.1", "--skip-syslog", f"--pid-file={workdir}/mysqld.pid",
         f"--log-error={workdir}/error.log"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    deadline = time.monotonic() + 60
    while subprocess.run(["mariadb-admin", f"--socket={sock}", "ping"], capture_output=True).returncode:
        if time.monotonic() > deadline:
            raise TimeoutError(f"MariaDB did not start: see {workdir}/error.log")
        time.sleep(0.2)
    password = "test-pass"
    sql = (f"CREATE USER 'app'@'127.0.0.1' IDENTIFIED BY '{password}'; "
           "GRANT ALL ON *.* TO 'app'@'127.0.0.1'; FLUSH PRIVILEGES;")
    subprocess.run(["mariadb", f"--socket={sock}", "-e", sql], check=True, capture_output=True)
    return MariaDB("127.0.0.1", port, "app", password, process, sock)


@dataclass
class MilvusServer:
    port: int
    process: subprocess.Popen
    own_group: bool = False  # started in a session of its own: stop the whole group (the real Milvus's
    # `milvus-server` is a wrapper whose Milvus child would outlive it, holding fixed ports)

    @property
    def uri(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def stop(self) -> None:
        self._signal(signal.SIGTERM)
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self._signal(signal.SIGKILL)
            self.process.wait()
        if self.own_group:  # let the Milvus child finish its own shutdown (it deregisters its sessions)
            deadline = time.monotonic() + 30
            while self._group_alive() and time.monotonic() < deadline:
                self._signal(signal.SIGTERM)
                time.sleep(0.5)
            self._signal(signal.SIGKILL)

    def _group_alive(self) -> bool:
        try:
            os.killpg(self.process.pid, 0)
        except ProcessLookupError:
            return False
        return True

    def _signal(self, number: int) -> None:
        try:
            if self.own_group:
                os.killpg(self.process.pid, number)
            else:
                self.process.send_signal(number)
        except ProcessLookupError:
            pass


def start_milvus_server(data_dir: Path, venv_bin: Path) -> MilvusServer:
    port = free_port()
    log = (data_dir.parent / f"{data_dir.name}.log").open("wb")  # kept beside the data for a failed test
    process = subprocess.Popen(
        [str(venv_bin / "milvus-lite"), "server", "--data-dir", str(data_dir), "--host", "127.0.0.1",
         "--port", str(port)], stdout=log, stderr=subprocess.STDOUT)
    wait_for_port(port, 60)
    return MilvusServer(port, process)


def start_milvus_standalone(data_dir: Path, venv_bin: Path, timeout_s: float = 120) -> MilvusServer:
    """The real Milvus standalone (PyPI `milvus`: its `milvus-server` runs the Milvus binary with an
    embedded etcd and local storage), on free ports; its embedded etcd's peer port (2380) is fixed, so one
    runs per machine at a time. Ready when a client can list collections (the proxy port opens a few
    seconds before the coordinators are up)."""
    ports = {name: free_port() for name in ("proxy", "etcd", "root-coord", "proxy-internal", "query-coord",
                                            "query-node", "index-coord", "index-node", "data-coord", "data-node")}
    command = [str(venv_bin / "milvus-server"), "--data", str(data_dir),
               *[arg for name, port in ports.items() for arg in (f"--{name}-port", str(port))]]
    log_path = data_dir.parent / f"{data_dir.name}.log"
    server = MilvusServer(ports["proxy"], _launch(command, log_path), own_group=True)
    _wait_ready(server, timeout_s)
    return server


def _launch(command: list[str], log_path: Path | None) -> subprocess.Popen:
    log = log_path.open("ab") if log_path else subprocess.DEVNULL
    return subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)


def _wait_ready(server: MilvusServer, timeout_s: float) -> None:
    from pymilvus import MilvusClient

    deadline = time.monotonic() + timeout_s
    while True:
        try:
            client = MilvusClient(uri=server.uri, timeout=5, dedicated=True)
            client.list_collections()
            client.close()
            return
        except Exception as exc:  # not ready yet  # noqa: BLE001
            if time.monotonic() > deadline or server.process.poll() is not None:
                server.stop()
                raise TimeoutError("Milvus standalone did not start (its log is beside its data)") from exc
            time.sleep(1)
