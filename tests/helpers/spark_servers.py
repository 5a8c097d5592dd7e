"""Spark Connect servers started on this machine, on loopback: what the engine tests and benchmarks run against.

  jvm_connect_server    JVM Spark (the `pyspark` package's jars, `spark` extra) + delta-spark, started with
                        spark-submit from infra/spark-connect/cpu.conf plus the loopback overrides below; the
                        master is local[N] or a standalone cluster.
  standalone_cluster    a Spark standalone Master and N Workers (spark-class ...deploy.master.Master / Worker).
  sail_server           a `sail spark server` process; `local-cluster` mode runs its queries on worker
                        processes with a fixed number of task slots each.

Every process is started in its own session and stopped by its process id (SIGTERM to its process group,
then SIGKILL), also when the caller fails. Logs go to files under the given work directory; a server that
exits or does not listen in time raises with the tail of its log.

delta-spark's jars are resolved from Maven Central by spark-submit's Ivy (`spark.jars.packages` of cpu.conf)
into .spark-cache/ivy in the repository (git-ignored), so only the first start on a machine downloads them.
"""

from __future__ import annotations

import contextlib
import re
import sys
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from lake.processes import ManagedProcess, free_port, start, wait_for_port

REPO = Path(__file__).resolve().parents[2]
CPU_CONF = REPO / "infra" / "spark-connect" / "cpu.conf"
SPARK_CACHE = REPO / ".spark-cache"
CONNECT_SERVER_CLASS = "org.apache.spark.sql.connect.service.SparkConnectServer"
# The first start downloads delta-spark (and hadoop-aws) from Maven Central; a busy 2-core machine needs the rest.
START_TIMEOUT_S = 300
# Keys of cpu.conf that only mean something on Kubernetes or name in-cluster addresses; a loopback server
# replaces them (LOOPBACK_CONF) or leaves them unused (spark.kubernetes.* do nothing without a k8s master).
# hadoop-aws stays in spark.jars.packages (the resolve of the conf's own coordinates is part of the test), but
# its AWS SDK bundle (about 600 MB, needed only for s3a:// lakes) is excluded.
LOOPBACK_EXCLUDES = "software.amazon.awssdk:bundle"
SMALL_MACHINE_JAVA_OPTIONS = "-XX:TieredStopAtLevel=1 -XX:+UseSerialGC"


def read_spark_conf(path: Path) -> dict[str, str]:
    """A spark-defaults.conf as a dict (key, whitespace, value; # comments), in file order."""
    conf = {}
    for line in path.read_text().splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            key, _, value = line.partition(" ")
            conf[key] = value.strip()
    return conf


def spark_home() -> Path:
    """The full `pyspark` package's directory: Spark's jars and bin/spark-class (the `spark` extra)."""
    import importlib.util

    spec = importlib.util.find_spec("pyspark")
    home = Path(spec.origin).parent if spec and spec.origin else None
    if home is None or not (home / "jars").is_dir() or not (home / "bin" / "spark-class").exists():
        raise RuntimeError(
            "JVM Spark needs the full `pyspark` package (Spark's jars and bin/spark-class): "
            "install the `spark` extra (`uv sync --extra spark`; `make venv` does)"
        )
    return home


def loopback_conf(grpc_port: int, ui_port: int, master: str, shuffle_partitions: int | None) -> dict[str, str]:
    """The test-only overrides of cpu.conf for a server on this machine, each with its reason."""
    conf = {
        "spark.master": master,  # local[N] or spark://127.0.0.1:P, not k8s
        "spark.driver.host": "127.0.0.1",  # cpu.conf names the in-cluster headless Service
        "spark.driver.bindAddress": "127.0.0.1",
        "spark.driver.port": "0",  # any free port: several servers may run at once
        "spark.blockManager.port": "0",
        "spark.ui.port": str(ui_port),  # the status API the cluster test reads
        "spark.connect.grpc.binding.address": "127.0.0.1",
        "spark.connect.grpc.binding.port": str(grpc_port),
        "spark.driver.memory": "1g",  # a shared 2-core, 24 GB machine, not a node
        "spark.executor.memory": "768m",
        "spark.executor.cores": "1",  # cpu.conf's 4 would not fit a 1-core worker
        "spark.executor.instances": "2",
        "spark.cores.max": "2",
        # Delta replays its log in 50 partitions by default: minutes of task overhead for a tiny test lake. One
        # task per snapshot: each costs an executor a fresh codegen of Delta's action schema (measured on the
        # 2-core machine, nightly chain on two 1-core workers: 464 tasks and 152 executor CPU s with 2, 350 and 137)
        "spark.databricks.delta.snapshotPartitions": "1",
        "spark.executor.memoryOverhead": "256m",
        "spark.jars.ivy": str(SPARK_CACHE / "ivy"),  # cpu.conf's /opt/spark/ivy is the image's cache
        "spark.jars.excludes": LOOPBACK_EXCLUDES,
        "spark.pyspark.python": sys.executable,  # this venv: project + XGBoost for mapInArrow
        "spark.pyspark.driver.python": sys.executable,
        "spark.eventLog.enabled": "false",
        # every executor is on this one host: waiting the default 3 s for the executor a task prefers (the one
        # holding its shuffle output) only idles a 1-core worker while the other one is free
        "spark.locality.wait": "0s",
        # short-lived JVMs on a shared 2-core machine: the C1 compiler only and a single-threaded collector
        # spend the little CPU there is on the jobs instead of on C2 compiles and parallel GC threads (measured,
        # nightly chain on the two-worker cluster: with C2 the driver took 236 CPU s instead of 184, executors 294
        # instead of 152)
        "spark.driver.extraJavaOptions": SMALL_MACHINE_JAVA_OPTIONS,
        "spark.executor.extraJavaOptions": SMALL_MACHINE_JAVA_OPTIONS,
    }
    if shuffle_partitions is not None:
        conf["spark.sql.shuffle.partitions"] = str(shuffle_partitions)  # tiny lakes; 400 tasks cost minutes here
    return conf


@contextlib.contextmanager
def _running(processes: list[ManagedProcess]) -> Iterator[None]:
    """Stop every process in `processes` (also those appended later), newest first, whatever happens."""
    try:
        yield
    finally:
        for managed in reversed(processes):
            managed.stop()


def _spark_env(home: Path) -> dict[str, str]:
    return {
        "SPARK_HOME": str(home),
        "SPARK_LOCAL_IP": "127.0.0.1",
        "PYSPARK_PYTHON": sys.executable,
        # no conf dir of the developer's (spark-defaults.conf, log4j2.properties) leaks into the server
        "SPARK_CONF_DIR": str(SPARK_CACHE / "empty-conf"),
    }


@dataclass
class ConnectServer:
    url: str
    ui_port: int
    process: ManagedProcess
    conf: dict[str, str]
    started_s: float

    def rest(self, path: str):
        """GET the driver's monitoring REST API (http://127.0.0.1:<ui port>/api/v1/...) as JSON."""
        import json
        import urllib.request

        with urllib.request.urlopen(f"http://127.0.0.1:{self.ui_port}/api/v1/{path}", timeout=30) as response:
            return json.loads(response.read())


@contextlib.contextmanager
def jvm_connect_server(
    log_dir: Path,
    master: str = "local[2]",
    conf_file: Path = CPU_CONF,
    shuffle_partitions: int | None = 4,
    extra_conf: Mapping[str, str] | None = None,
) -> Iterator[ConnectServer]:
    """A JVM Spark Connect server with Delta: `conf_file` as its properties file, the loopback overrides as
    --conf (which win over the file), then `extra_conf`."""
    home = spark_home()
    (SPARK_CACHE / "empty-conf").mkdir(parents=True, exist_ok=True)
    grpc_port, ui_port = free_port(), free_port()
    overrides = {**loopback_conf(grpc_port, ui_port, master, shuffle_partitions), **(extra_conf or {})}
    command = [
        str(home / "bin" / "spark-submit"),
        "--class",
        CONNECT_SERVER_CLASS,
        "--name",
        "distillguard-connect",
        "--properties-file",
        str(conf_file),
    ]
    for key, value in overrides.items():
        command += ["--conf", f"{key}={value}"]
    command.append("spark-internal")
    processes: list[ManagedProcess] = []
    began = time.monotonic()
    with _running(processes):
        processes.append(start("spark-connect", command, log_dir, _spark_env(home)))
        wait_for_port(processes[0], grpc_port, START_TIMEOUT_S)
        yield ConnectServer(
            f"sc://127.0.0.1:{grpc_port}",
            ui_port,
            processes[0],
            {**read_spark_conf(conf_file), **overrides},
            time.monotonic() - began,
        )


@dataclass
class StandaloneCluster:
    master_url: str
    master_ui_port: int
    master: ManagedProcess
    workers: list[ManagedProcess] = field(default_factory=list)


@contextlib.contextmanager
def standalone_cluster(
    log_dir: Path, workers: int = 2, cores: int = 1, memory: str = "1g"
) -> Iterator[StandaloneCluster]:
    """A Spark standalone Master and `workers` Workers on loopback, each worker offering `cores` and `memory`."""
    home = spark_home()
    (SPARK_CACHE / "empty-conf").mkdir(parents=True, exist_ok=True)
    # the daemons only start and hand out executors: the same small-machine JVM options as the driver halve the
    # CPU their start costs (measured on the 2-core machine: 40 CPU s for a master and two workers, then 23)
    env = {
        **_spark_env(home),
        "SPARK_DAEMON_MEMORY": "256m",
        "SPARK_DAEMON_JAVA_OPTS": SMALL_MACHINE_JAVA_OPTIONS,
        "SPARK_MASTER_HOST": "127.0.0.1",
        "SPARK_WORKER_DIR": str(log_dir / "work"),
    }
    spark_class = str(home / "bin" / "spark-class")
    port, ui_port = free_port(), free_port()
    processes: list[ManagedProcess] = []
    with _running(processes):
        master = start(
            "master",
            [
                spark_class,
                "org.apache.spark.deploy.master.Master",
                "--host",
                "127.0.0.1",
                "--port",
                str(port),
                "--webui-port",
                str(ui_port),
            ],
            log_dir,
            env,
        )
        processes.append(master)
        wait_for_port(master, port, START_TIMEOUT_S)
        url = f"spark://127.0.0.1:{port}"
        cluster = StandaloneCluster(url, ui_port, master)
        for index in range(workers):
            worker_port = free_port()
            worker = start(
                f"worker-{index}",
                [
                    spark_class,
                    "org.apache.spark.deploy.worker.Worker",
                    "--host",
                    "127.0.0.1",
                    "--port",
                    str(worker_port),
                    "--webui-port",
                    str(free_port()),
                    "--cores",
                    str(cores),
                    "--memory",
                    memory,
                    url,
                ],
                log_dir,
                env,
            )
            processes.append(worker)
            cluster.workers.append(worker)
        for worker in cluster.workers:
            _wait_for_registration(master, worker)
        yield cluster


def _wait_for_registration(master: ManagedProcess, worker: ManagedProcess, timeout_s: float = START_TIMEOUT_S) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if worker.process.poll() is not None:
            raise RuntimeError(f"{worker.name} exited with {worker.process.returncode}:\n{worker.log_tail()}")
        if re.search(r"Successfully registered with master", worker.log_path.read_text(errors="replace")):
            return
        time.sleep(0.5)
    raise TimeoutError(
        f"{worker.name} did not register with the master within {timeout_s:.0f}s:\n"
        f"{worker.log_tail()}\nmaster:\n{master.log_tail()}"
    )


def sail_cluster_env(workers: int, task_slots: int) -> dict[str, str]:
    """Sail local-cluster settings (pysail 0.7: SAIL_<SECTION>__<KEY>). A query stage needs as many task slots
    as it has partitions at once: workers x task_slots must cover spark.sql.shuffle.partitions, or it fails with
    "task region requires N worker task slots"."""
    # INFO logs on: the server's log is how a caller sees that every worker came up ("worker N is available"),
    # whatever RUST_LOG the calling process runs with (the CLI quiets it to errors)
    return {
        "SAIL_MODE": "local-cluster",
        "SAIL_CLUSTER__WORKER_INITIAL_COUNT": str(workers),
        "SAIL_CLUSTER__WORKER_MAX_COUNT": str(workers),
        "SAIL_CLUSTER__WORKER_TASK_SLOTS": str(task_slots),
        "RUST_LOG": "info",
    }


@contextlib.contextmanager
def sail_server(log_dir: Path, env: Mapping[str, str] | None = None, name: str = "sail") -> Iterator[str]:
    """A `sail spark server` process on a free loopback port; yields its sc:// URL."""
    sail = Path(sys.executable).with_name("sail")
    port = free_port()
    processes: list[ManagedProcess] = []
    with _running(processes):
        processes.append(
            start(
                name, [str(sail), "spark", "server", "--ip", "127.0.0.1", "--port", str(port)], log_dir, dict(env or {})
            )
        )
        wait_for_port(processes[0], port, 60)
        yield f"sc://127.0.0.1:{port}"
