"""Test helpers: a real Spark standalone cluster on 127.0.0.1, spark-submit against it, and a local
Spark Connect server.

``standalone_cluster()`` starts one master and ``n_workers`` workers with pyspark's own
``sbin/spark-daemon.sh`` (the pip package ships it under the pyspark folder, which is SPARK_HOME here),
waits until every worker has registered, yields the master URL and stops every daemon by its PID on
exit, also when the test failed. ``spark_submit()`` runs pyspark's ``bin/spark-submit`` with the cached
Delta jars and Delta's session settings. ``connect_server()`` runs pyspark's Spark Connect server
(``spark-submit --class ...SparkConnectServer``, the jar ``spark-connect_2.13`` ships in pyspark's
``jars/``) in local mode with Delta configured, and stops it by its PID.

Everything listens on 127.0.0.1 only, on free ports chosen at random; logs, PID files and worker
folders live under one temporary folder.
"""

from __future__ import annotations

import glob
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path

import pyspark

REPO_ROOT = Path(__file__).resolve().parents[1]
SPARK_HOME = Path(pyspark.__file__).resolve().parent
LOOPBACK = "127.0.0.1"
IDENT = "veclink"  # SPARK_IDENT_STRING: names the PID files spark-daemon.sh writes
MASTER_CLASS = "org.apache.spark.deploy.master.Master"
WORKER_CLASS = "org.apache.spark.deploy.worker.Worker"

DELTA_CONF = {
    "spark.sql.extensions": "io.delta.sql.DeltaSparkSessionExtension",
    "spark.sql.catalog.spark_catalog": "org.apache.spark.sql.delta.catalog.DeltaCatalog",
}


#: log4j2 settings for the daemons and spark-submit: warnings and errors only, on stderr.
QUIET_LOG4J2 = """\
rootLogger.level = warn
rootLogger.appenderRef.stderr.ref = console
appender.console.type = Console
appender.console.name = console
appender.console.target = SYSTEM_ERR
appender.console.layout.type = PatternLayout
appender.console.layout.pattern = %d{HH:mm:ss.SSS} %p %c{1}: %m%n%ex
logger.master.name = org.apache.spark.deploy
logger.master.level = info
"""


class ClusterError(RuntimeError):
    """The test cluster could not be started (the message holds the daemon log tails)."""


class MasterURL(str):
    """The master URL ``spark://127.0.0.1:<port>``, carrying the cluster's details as attributes.

    Attributes:
        webui: the master's web UI (``http://127.0.0.1:<port>``), whose ``/json/`` lists the workers.
        pids: daemon name (``master``, ``worker-1``...) -> PID.
        work_dirs: daemon name -> the worker's work folder (executors run inside it).
        base_dir: the temporary folder holding logs, PID files and work folders.
        conf_dir: the SPARK_CONF_DIR of the daemons (quiet logging); pass it to spark-submit too.
    """

    webui: str
    pids: dict[str, int]
    work_dirs: dict[str, Path]
    base_dir: Path
    conf_dir: Path


def spark_home() -> Path:
    """pyspark's package folder, which holds bin/ and sbin/ like a Spark distribution."""
    if not (SPARK_HOME / "sbin" / "spark-daemon.sh").is_file():
        raise ClusterError(f"{SPARK_HOME}/sbin/spark-daemon.sh not found: is pyspark installed from pip?")
    return SPARK_HOME


def free_port() -> int:
    """A TCP port that was free on 127.0.0.1 a moment ago (the OS picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((LOOPBACK, 0))
        return int(sock.getsockname()[1])


def pid_alive(pid: int) -> bool:
    """Whether ``pid`` is a running (not zombie) process."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return True  # no /proc: trust kill(0)
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def _python_path() -> str:
    parts = [str(REPO_ROOT)]
    if os.environ.get("PYTHONPATH"):
        parts.append(os.environ["PYTHONPATH"])
    return os.pathsep.join(parts)


def daemon_env(base_dir: Path) -> dict[str, str]:
    """Environment of the master/worker daemons: everything under ``base_dir``, loopback only."""
    env = dict(os.environ)
    env.update(
        {
            "SPARK_HOME": str(spark_home()),
            "SPARK_CONF_DIR": str(base_dir / "conf"),
            "SPARK_LOG_DIR": str(base_dir / "logs"),
            "SPARK_PID_DIR": str(base_dir / "pids"),
            "SPARK_WORKER_DIR": str(base_dir / "work"),
            "SPARK_IDENT_STRING": IDENT,
            "SPARK_LOCAL_IP": LOOPBACK,
            "SPARK_MASTER_HOST": LOOPBACK,
            "SPARK_DAEMON_MEMORY": "512m",
            # Executors inherit the worker's environment: same python (pandas, pyarrow) and our package.
            "PYSPARK_PYTHON": os.environ.get("PYSPARK_PYTHON", sys.executable),
            "PYTHONPATH": _python_path(),
        }
    )
    for key in ("SPARK_NO_DAEMONIZE", "SPARK_MASTER", "SPARK_ENV_LOADED", "PYSPARK_PYTHONPATH_SET"):
        env.pop(key, None)
    return env


def _pid_file(base_dir: Path, cls: str, instance: int) -> Path:
    return base_dir / "pids" / f"spark-{IDENT}-{cls}-{instance}.pid"


def _log_tails(base_dir: Path, lines: int = 15) -> str:
    out = []
    for log in sorted((base_dir / "logs").glob("*.out")):
        tail = log.read_text(errors="replace").splitlines()[-lines:]
        out.append(f"--- {log.name}\n" + "\n".join(tail))
    return "\n".join(out) or "(no daemon logs)"


def _start_daemons(
    base_dir: Path, env: Mapping[str, str], daemons: Sequence[tuple[str, int, list[str]]]
) -> dict[tuple[str, int], int]:
    """Start daemons with spark-daemon.sh (in parallel: each start sleeps ~2 s) and read their PIDs."""
    script = str(spark_home() / "sbin" / "spark-daemon.sh")
    procs = [
        (
            cls,
            inst,
            subprocess.Popen(
                ["bash", script, "start", cls, str(inst), *args],
                env=dict(env),
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                text=True,
            ),
        )
        for cls, inst, args in daemons
    ]
    pids: dict[tuple[str, int], int] = {}
    problems = []
    for cls, inst, proc in procs:
        try:
            output, _ = proc.communicate(timeout=60)
        except subprocess.TimeoutExpired:
            proc.kill()
            output, _ = proc.communicate()
        pid_file = _pid_file(base_dir, cls, inst)
        if pid_file.is_file():
            pids[(cls, inst)] = int(pid_file.read_text().strip())
        if proc.returncode != 0 or "failed to launch" in output or not pid_file.is_file():
            problems.append(f"{cls} {inst}: exit {proc.returncode}: {output.strip()}")
    if problems:
        # Keep what did start so the caller stops it.
        raise _StartFailed(pids, "; ".join(problems))
    return pids


class _StartFailed(ClusterError):
    def __init__(self, pids: dict[tuple[str, int], int], message: str):
        super().__init__(message)
        self.pids = pids


def _get_json(url: str, timeout: float = 3.0) -> dict:
    # An opener without proxies: the UI is on loopback and must never go through an HTTP proxy.
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    with opener.open(url, timeout=timeout) as resp:
        return json.loads(resp.read().decode("utf-8"))


def alive_workers(webui: str) -> int:
    """How many ALIVE workers the master at ``webui`` lists (0 while it does not answer)."""
    try:
        state = _get_json(f"{webui}/json/")
    except (OSError, ValueError):
        return 0
    return sum(1 for w in state.get("workers", []) if w.get("state") == "ALIVE")


def stop_pids(pids: Sequence[int], grace: float = 20.0) -> list[int]:
    """SIGTERM each PID, wait up to ``grace`` seconds, then SIGKILL what is left.

    Returns:
        The PIDs that had to be killed with SIGKILL.
    """
    for pid in pids:
        if pid_alive(pid):
            try:
                os.kill(pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline and any(pid_alive(p) for p in pids):
        time.sleep(0.2)
    killed = []
    for pid in pids:
        if pid_alive(pid):
            try:
                os.kill(pid, signal.SIGKILL)
                killed.append(pid)
            except ProcessLookupError:
                pass
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and any(pid_alive(p) for p in pids):
        time.sleep(0.1)
    return killed


@contextmanager
def standalone_cluster(
    n_workers: int = 2,
    cores: int = 1,
    memory: str = "1g",
    base_dir: Path | None = None,
    start_timeout: float = 90.0,
) -> Iterator[MasterURL]:
    """Run a Spark standalone master and ``n_workers`` workers on 127.0.0.1 for the ``with`` block.

    Args:
        n_workers: number of workers.
        cores: cores each worker offers.
        memory: memory each worker offers to executors (``1g``, ``512m``).
        base_dir: folder for logs, PID files and worker folders (a new temporary one if None).
        start_timeout: seconds to wait for all workers to register.

    Yields:
        The master URL (a :class:`MasterURL`, a ``str`` with ``webui``, ``pids`` and ``work_dirs``).

    Raises:
        ClusterError: when a daemon fails to start or the workers do not register in time.
    """
    base = Path(base_dir) if base_dir is not None else Path(tempfile.mkdtemp(prefix="veclink-cluster-"))
    for sub in ("conf", "logs", "pids", "work"):
        (base / sub).mkdir(parents=True, exist_ok=True)
    (base / "conf" / "log4j2.properties").write_text(QUIET_LOG4J2)
    env = daemon_env(base)
    master_port, webui_port = free_port(), free_port()
    url = MasterURL(f"spark://{LOOPBACK}:{master_port}")
    url.webui = f"http://{LOOPBACK}:{webui_port}"
    url.pids = {}
    url.work_dirs = {}
    url.base_dir = base
    url.conf_dir = base / "conf"
    started: dict[tuple[str, int], int] = {}
    try:
        try:
            started.update(
                _start_daemons(
                    base,
                    env,
                    [
                        (
                            MASTER_CLASS,
                            1,
                            ["--host", LOOPBACK, "--port", str(master_port), "--webui-port", str(webui_port)],
                        )
                    ],
                )
            )
            workers = []
            for i in range(1, n_workers + 1):
                work = base / "work" / f"worker-{i}"
                work.mkdir(parents=True, exist_ok=True)
                url.work_dirs[f"worker-{i}"] = work
                workers.append(
                    (
                        WORKER_CLASS,
                        i,
                        [
                            "--host",
                            LOOPBACK,
                            "--port",
                            str(free_port()),
                            "--webui-port",
                            str(free_port()),
                            "--cores",
                            str(cores),
                            "--memory",
                            memory,
                            "--work-dir",
                            str(work),
                            str(url),
                        ],
                    )
                )
            started.update(_start_daemons(base, env, workers))
        except _StartFailed as exc:
            started.update(exc.pids)
            raise ClusterError(f"starting the cluster failed: {exc}\n{_log_tails(base)}") from exc
        url.pids = {
            ("master" if cls == MASTER_CLASS else f"worker-{inst}"): pid
            for (cls, inst), pid in started.items()
        }
        deadline = time.monotonic() + start_timeout
        while alive_workers(url.webui) < n_workers:
            dead = [name for name, pid in url.pids.items() if not pid_alive(pid)]
            if dead or time.monotonic() > deadline:
                why = f"daemons died: {dead}" if dead else f"not all {n_workers} workers registered"
                raise ClusterError(f"{why} after {start_timeout:.0f} s\n{_log_tails(base)}")
            time.sleep(0.5)
        yield url
    finally:
        # Also every PID file on disk: covers a start interrupted before its PIDs were recorded.
        on_disk = []
        for pid_file in (base / "pids").glob("*.pid"):
            try:
                on_disk.append(int(pid_file.read_text().strip()))
            except (OSError, ValueError):
                continue
        stop_pids(sorted(set(started.values()) | set(on_disk)))
        if base_dir is None:
            import shutil

            shutil.rmtree(base, ignore_errors=True)


def spark_submit(
    master: str,
    script: str | Path,
    args: Sequence[str] = (),
    jars: Sequence[str] | None = None,
    env: Mapping[str, str] | None = None,
    conf: Mapping[str, str] | None = None,
    timeout: float = 300.0,
) -> subprocess.CompletedProcess[str]:
    """Run ``script`` with pyspark's ``bin/spark-submit`` on ``master``, Delta configured.

    Args:
        master: the master URL (``spark://...`` or ``local[2]``).
        script: the Python application.
        args: the application's arguments.
        jars: jars for ``--jars``; None means the cached Delta jars (``veclink_spark.session.delta_jars()``).
        env: extra environment variables.
        conf: extra ``--conf`` settings (they win over the defaults here).
        timeout: seconds before the whole process group is killed (then ``returncode`` is -9).

    Returns:
        The finished process, with ``stdout`` and ``stderr`` captured as text.
    """
    if jars is None:
        from veclink_spark.session import delta_jars

        jars = delta_jars()
    settings = {
        **DELTA_CONF,
        "spark.driver.host": LOOPBACK,
        "spark.driver.bindAddress": LOOPBACK,
        "spark.ui.enabled": "false",
        "spark.ui.showConsoleProgress": "false",
        "spark.sql.session.timeZone": "UTC",
        "spark.executor.memory": "512m",
        "spark.sql.shuffle.partitions": "4",
        "spark.databricks.delta.snapshotPartitions": "2",
    }
    settings.update(conf or {})
    cmd = [str(spark_home() / "bin" / "spark-submit"), "--master", master]
    if jars:
        cmd += ["--jars", ",".join(jars)]
    for key, value in settings.items():
        cmd += ["--conf", f"{key}={value}"]
    cmd += [str(script), *args]
    run_env = dict(os.environ)
    run_env.update(
        {
            "SPARK_HOME": str(spark_home()),
            "SPARK_LOCAL_IP": LOOPBACK,
            "PYSPARK_PYTHON": os.environ.get("PYSPARK_PYTHON", sys.executable),
            "PYSPARK_DRIVER_PYTHON": sys.executable,
            "PYTHONPATH": _python_path(),
        }
    )
    run_env.update(env or {})
    # A new session, so a timeout can kill the JVM and its Python driver together.
    proc = subprocess.Popen(
        cmd, env=run_env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True
    )
    try:
        stdout, stderr = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        stdout, stderr = proc.communicate()
        stderr += f"\n[spark_submit] killed after {timeout:.0f} s timeout"
    return subprocess.CompletedProcess(cmd, proc.returncode, stdout, stderr)


# ------------------------------------------------------------------------------- Spark Connect server

CONNECT_SERVER_CLASS = "org.apache.spark.sql.connect.service.SparkConnectServer"


class ConnectServerError(ClusterError):
    """The Spark Connect server is not available: ``missing`` tells a machine without what it needs
    (no Connect jar or client libraries, no Delta jars) from a server that failed to start."""

    def __init__(self, message: str, missing: bool = False):
        super().__init__(message)
        self.missing = missing


class ConnectURL(str):
    """The server's ``sc://127.0.0.1:<port>``, with ``pid`` (the server JVM) and ``log`` (its output)."""

    pid: int
    log: Path


def connect_prerequisites() -> list[str]:
    """The Delta jars for the server (fetched into the jar cache when missing).

    Raises:
        ConnectServerError: (``missing``) without pyspark's Connect server jar, the Connect client's Python
            libraries (grpcio...: the ``connect`` extra of pyspark) or the Delta jars.
    """
    jars = glob.glob(str(spark_home() / "jars" / "spark-connect_*.jar"))
    if not jars:
        raise ConnectServerError(f"no spark-connect_*.jar in {spark_home() / 'jars'}", missing=True)
    try:
        from pyspark.sql.connect.utils import check_dependencies

        check_dependencies()
    except ImportError as exc:
        raise ConnectServerError(
            f"the Spark Connect client libraries are missing ({exc}): pip install 'pyspark[connect]'",
            missing=True,
        ) from exc
    from veclink_spark.errors import VeclinkError
    from veclink_spark.session import delta_jars

    try:
        return delta_jars()
    except VeclinkError as exc:
        raise ConnectServerError(f"the Delta jars are not available: {exc}", missing=True) from exc


def _accepts(port: int) -> bool:
    try:
        with socket.create_connection((LOOPBACK, port), timeout=1.0):
            return True
    except OSError:
        return False


@contextmanager
def connect_server(
    base_dir: Path, memory: str = "2g", conf: Mapping[str, str] | None = None, start_timeout: float = 180.0
) -> Iterator[ConnectURL]:
    """Run a Spark Connect server (local[2], Delta configured) on 127.0.0.1 for the ``with`` block.

    The server's Python workers run this interpreter with the checkout on PYTHONPATH (the library's
    functions reach them pickled by reference). Ready once its port accepts connections; stopped by its
    PID (SIGTERM, then SIGKILL, also for what is left in its process group) on exit.

    Args:
        base_dir: folder for the server's log and settings.
        memory: the server's driver memory (local mode: it runs the executors too).
        conf: extra ``--conf`` settings (they win over the defaults here).
        start_timeout: seconds to wait for the port.

    Yields:
        The server's URL (a :class:`ConnectURL`).

    Raises:
        ConnectServerError: see :func:`connect_prerequisites`; or the server exited or did not listen
            in time (the message holds its log tail).
    """
    jars = connect_prerequisites()
    base_dir.mkdir(parents=True, exist_ok=True)
    conf_dir = base_dir / "conf"
    conf_dir.mkdir(exist_ok=True)
    (conf_dir / "log4j2.properties").write_text(QUIET_LOG4J2)
    port = free_port()
    settings = {
        **DELTA_CONF,
        "spark.connect.grpc.binding.address": LOOPBACK,
        "spark.connect.grpc.binding.port": str(port),
        "spark.driver.host": LOOPBACK,
        "spark.driver.bindAddress": LOOPBACK,
        "spark.ui.enabled": "false",
        "spark.ui.showConsoleProgress": "false",
        "spark.sql.session.timeZone": "UTC",
        # The test session's settings for tiny tables on 2 cores (tests/conftest.py).
        "spark.sql.shuffle.partitions": "4",
        "spark.default.parallelism": "4",
        "spark.databricks.delta.snapshotPartitions": "2",
    }
    settings.update(conf or {})
    cmd = [
        str(spark_home() / "bin" / "spark-submit"),
        "--class",
        CONNECT_SERVER_CLASS,
        "--name",
        "veclink-connect-test",
        "--master",
        "local[2]",
        "--driver-memory",
        memory,
        "--jars",
        ",".join(jars),
    ]
    for key, value in settings.items():
        cmd += ["--conf", f"{key}={value}"]
    env = dict(os.environ)
    env.update(
        {
            "SPARK_HOME": str(spark_home()),
            "SPARK_CONF_DIR": str(conf_dir),
            "SPARK_LOCAL_IP": LOOPBACK,
            "PYSPARK_PYTHON": os.environ.get("PYSPARK_PYTHON", sys.executable),
            "PYTHONPATH": _python_path(),
        }
    )
    for key in ("SPARK_REMOTE", "SPARK_CONNECT_MODE_ENABLED", "PYSPARK_GATEWAY_PORT", "SPARK_SUBMIT"):
        env.pop(key, None)
    log = base_dir / "connect-server.log"
    with log.open("w") as out:
        # spark-submit execs the JVM, so the PID is the server's; a new session makes it a group leader.
        proc = subprocess.Popen(
            cmd, env=env, cwd=str(base_dir), stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )
    url = ConnectURL(f"sc://{LOOPBACK}:{port}")
    url.pid = proc.pid
    url.log = log
    try:
        deadline = time.monotonic() + start_timeout
        while not _accepts(port):
            if proc.poll() is not None or time.monotonic() > deadline:
                why = f"exited with {proc.returncode}" if proc.poll() is not None else "did not listen"
                tail = "\n".join(log.read_text(errors="replace").splitlines()[-20:])
                raise ConnectServerError(
                    f"the Spark Connect server {why} (port {port}, {start_timeout:.0f} s):\n{tail}"
                )
            time.sleep(0.5)
        yield url
    finally:
        stop_pids([proc.pid])
        try:
            os.killpg(proc.pid, signal.SIGKILL)  # Python workers it left behind, if any
        except (ProcessLookupError, PermissionError):
            pass
        proc.wait(timeout=30)
