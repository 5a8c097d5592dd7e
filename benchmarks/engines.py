"""The engine benchmark: the nightly aggregate + features jobs for one day, with a full window of history behind
it, on several engines over the same lake, in one run.

Usage:
  python benchmarks/engines.py --engines embedded-delta,pandas[,cudf] --records 2e6 --label cpu-2core \
      [--gen-days 2] [--window-days 28] [--runs 3] [--passes 2] [--replicate-to 2e8 --replicated-engines cudf] \
      [--work-dir /tmp/dg-engines]

Engines (BENCH_ENGINES), all on the same lake, the same day and the same history:
  embedded-delta  Sail in this machine's cores, embedded: the real jobs (jobs/aggregate.py, jobs/features.py), Delta
  sail-cluster    Sail's local-cluster mode (2 worker processes), the same real jobs over Spark Connect
  jvm-delta       JVM Spark 4.2 + delta-spark Connect server (local[*], infra/spark-connect/cpu.conf), the same jobs
  pandas, cudf    the frame engines (lake/frame_engines.py), the same real jobs
  embedded, jvm-local  the older Parquet pair: the same transforms over the tables' Parquet files, no Delta
                  (benchmarks/spark_parquet_stage.py; jvm-local needs benchmarks/jvm_baseline_env.sh)

The lake: --gen-days days of about --records bronze records each are simulated and ingested (Sail); the last one is
the benchmark day. Then, on Sail (benchmarks/run_stage.py prepare): every generated day is aggregated, the
benchmark day's window is filled back to --window-days days with copies of the generated days' account_daily rows
(synthetic history, real size), and the benchmark day is clustered. Each engine gets a lake of its own linking the
inputs (bronze, ingest records, registry, clusters) and a hard-linked copy of account_daily, and replaces the
benchmark day's account_daily and account_features partitions.

--replicate-to N also grows the largest lake's benchmark day to >= N records (benchmarks/replicate_lake.py: that
day's bronze, every account_daily day and the day's clusters, with suffixed ids). Its account_daily is then written
by delta-rs, which Sail 0.7 cannot replaceWhere list columns into, so only frame engines run on replicated lakes.

Measured per engine: --runs fresh child processes (benchmarks/engine_stage.py), each running the stage --passes
times: pass 1 is COLD (new process, engine start counted separately, first touch of the lake), later passes WARM.
Reported per engine: median and min-max over runs of cold stage time (and cold end to end, engine start
included), warm stage time, records/s and accounts/s (cold), CPU seconds and peak RSS of the child's process
tree (sampled from /proc), peak GPU memory (RMM) and GPU utilisation (nvidia-smi, sampled) where a GPU is
present. After each engine's first run its outputs are checksummed (benchmarks/checksums.py) and compared with
the first engine's: exact for counts, strings, lists and timestamps, 1e-9 relative for float sums.
Results: <out>/engines-<label>.json and .md.
"""

from __future__ import annotations

import argparse
import datetime as dt
import importlib.util
import json
import math
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

BENCH_DIR = Path(__file__).resolve().parent
REPO = BENCH_DIR.parent
sys.path.insert(0, str(BENCH_DIR))
sys.path.insert(0, str(REPO))

from checksums import compare, output_checksums  # noqa: E402 - importable only once sys.path holds benchmarks/ and the repository
from machine import machine_facts  # noqa: E402 - importable only once sys.path holds benchmarks/ and the repository

START = dt.date(2026, 1, 5)
BENCH_ENGINES = ("embedded-delta", "sail-cluster", "jvm-delta", "pandas", "cudf", "embedded", "jvm-local")
SPARK_PARQUET_ENGINES = ("embedded", "jvm-local")
SAIL_ENGINES = ("embedded-delta", "sail-cluster", "embedded")
FRAME_ENGINES = ("pandas", "cudf")
# Tables every real-job engine reads, linked from the shared lake; account_daily is copied (hard links), since the
# engines write the benchmark day into it.
LINKED_TABLES = (
    "requests",
    "quarantine",
    "ingest_runs",
    "accounts",
    "model_releases",
    "asn_info",
    "enforcement_labels",
    "account_clusters",
)
JVM_PYTHON = REPO / ".bench-jvm" / "bin" / "python"
SAMPLE_INTERVAL_S = 0.1
GPU_SAMPLE_INTERVAL_S = 0.5
CALIBRATION_ACCOUNTS = 3000


def log(message: str) -> None:
    print(f"[engines {time.strftime('%H:%M:%S')}] {message}", flush=True)


# --- child processes ----------------------------------------------------------------------------------


def process_table() -> dict[int, tuple[int, int, float]]:
    """pid -> (parent pid, resident bytes, CPU seconds so far) for every process now, read from /proc
    (no psutil needed on the bare GPU hosts the benchmark also runs on)."""
    page, ticks = os.sysconf("SC_PAGE_SIZE"), os.sysconf("SC_CLK_TCK")
    table = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as stat_file:
                stat = stat_file.read()
            with open(f"/proc/{entry}/statm") as statm_file:
                resident_pages = int(statm_file.read().split()[1])
        except (OSError, IndexError, ValueError):
            continue  # the process ended between listdir and open
        # the command name may contain spaces and parentheses: the fields after the last ')' are fixed
        fields = stat[stat.rindex(")") + 2 :].split()
        table[int(entry)] = (int(fields[1]), resident_pages * page, (int(fields[11]) + int(fields[12])) / ticks)
    return table


class TreeMemorySampler:
    """Peak of the summed RSS of a process and all its descendants, sampled on a thread from /proc; also
    the tree's CPU seconds (user + system, last sample of each process)."""

    def __init__(self, pid: int, interval_s: float = SAMPLE_INTERVAL_S) -> None:
        self._root = pid
        self._interval = interval_s
        self._stop = threading.Event()
        self.peak_bytes = 0
        self.peak_processes = 0
        self._cpu_s: dict[int, float] = {}
        self._thread = threading.Thread(target=self._run, daemon=True)

    def sample(self) -> tuple[int, int]:
        """(summed RSS bytes, processes) of the tree right now."""
        table = process_table()
        children: dict[int, list[int]] = {}
        for pid, (parent, _rss, _cpu) in table.items():
            children.setdefault(parent, []).append(pid)
        total, count, pending = 0, 0, [self._root]
        while pending:
            pid = pending.pop()
            if pid in table:
                total += table[pid][1]
                count += 1
                self._cpu_s[pid] = table[pid][2]
            pending.extend(children.get(pid, ()))
        return total, count

    @property
    def cpu_s(self) -> float:
        return sum(self._cpu_s.values())

    def _run(self) -> None:
        while not self._stop.is_set():
            total, count = self.sample()
            if total > self.peak_bytes:
                self.peak_bytes, self.peak_processes = total, count
            self._stop.wait(self._interval)

    def __enter__(self) -> TreeMemorySampler:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()


def run_child(command: list[str], env: dict | None = None, timeout_s: float | None = None, echo: bool = False) -> dict:
    """Run a child that prints `RESULT {json}`; returns that result plus wall time and the tree's peak RSS."""
    began = time.perf_counter()
    process = subprocess.Popen(
        command,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        cwd=REPO,
        env={**os.environ, **(env or {})},
    )
    result, tail = None, []
    timer = threading.Timer(timeout_s, process.kill) if timeout_s else None
    if timer:
        timer.start()
    with TreeMemorySampler(process.pid) as sampler:
        for line in process.stdout:
            if line.startswith("RESULT "):
                result = json.loads(line[len("RESULT ") :])
                continue
            tail = (tail + [line.rstrip()])[-30:]
            if echo:
                print(f"    {line.rstrip()}", flush=True)
        code = process.wait()
    if timer:
        timer.cancel()
    wall = time.perf_counter() - began
    if code != 0 or result is None:
        reason = "timed out" if timer and wall >= timeout_s else f"exit code {code}"
        raise ChildFailed(f"{Path(command[1]).name} {' '.join(command[2:3])} failed ({reason})", tail)
    result["process_wall_s"] = wall
    result["peak_rss_tree_mib"] = sampler.peak_bytes / 2**20
    result["peak_rss_tree_processes"] = sampler.peak_processes
    result["cpu_tree_s"] = sampler.cpu_s
    return result


class ChildFailed(RuntimeError):
    def __init__(self, message: str, tail: list[str]) -> None:
        super().__init__(message)
        self.tail = tail


class GpuSampler:
    """GPU utilisation (%) and memory in use (MiB) from nvidia-smi, sampled on a thread; inactive without it."""

    def __init__(self, interval_s: float = GPU_SAMPLE_INTERVAL_S) -> None:
        self._interval = interval_s
        self._stop = threading.Event()
        self.utilisation: list[float] = []
        self.memory_mib: list[float] = []
        self._thread = threading.Thread(target=self._run, daemon=True)
        self.active = shutil.which("nvidia-smi") is not None

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                out = subprocess.run(
                    [
                        "nvidia-smi",
                        "--query-gpu=utilization.gpu,memory.used",
                        "--format=csv,noheader,nounits",
                        "-i",
                        "0",
                    ],
                    capture_output=True,
                    text=True,
                    timeout=10,
                    check=True,
                ).stdout
                util, memory = (float(v) for v in out.strip().split(","))
                self.utilisation.append(util)
                self.memory_mib.append(memory)
            except (subprocess.SubprocessError, ValueError):
                pass
            self._stop.wait(self._interval)

    def summary(self) -> dict | None:
        if not self.utilisation:
            return None
        return {
            "samples": len(self.utilisation),
            "mean_utilisation_pct": statistics.fmean(self.utilisation),
            "max_utilisation_pct": max(self.utilisation),
            "max_memory_used_mib": max(self.memory_mib),
        }

    def __enter__(self) -> GpuSampler:
        if self.active:
            self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        if self.active:
            self._thread.join()


# --- lakes --------------------------------------------------------------------------------------------


def bronze_records(lake: Path, dates: list[dt.date]) -> int:
    """Bronze request rows of `dates`, from the Delta log's per-file record counts."""
    import pyarrow as pa
    from deltalake import DeltaTable

    actions = pa.table(DeltaTable(str(lake / "requests")).get_add_actions(flatten=True))
    wanted = set(dates)
    return sum(
        rows
        for rows, day in zip(
            actions.column("num_records").to_pylist(), actions.column("partition.event_date").to_pylist()
        )
        if day in wanted
    )


def table_days(lake: Path, name: str, column: str = "event_date") -> set[dt.date]:
    from deltalake import DeltaTable

    if not DeltaTable.is_deltatable(str(lake / name)):
        return set()
    return {dt.date.fromisoformat(p[column]) for p in DeltaTable(str(lake / name)).partitions()}


def calibrate(work_dir: Path) -> float:
    """Bronze-bound simulator records per account-day, measured on a small population (it scales linearly)."""
    lake = work_dir / "calibration"
    shutil.rmtree(lake, ignore_errors=True)
    result = run_child(
        [
            sys.executable,
            str(BENCH_DIR / "run_stage.py"),
            "simulate",
            str(lake),
            START.isoformat(),
            "2",
            str(CALIBRATION_ACCOUNTS),
        ]
    )
    shutil.rmtree(lake, ignore_errors=True)
    shutil.rmtree(f"{lake}_truth", ignore_errors=True)
    return result["records"] / (CALIBRATION_ACCOUNTS * 2)


def generate_lake(
    lake: Path, records_per_day: int, gen_days: int, window_days: int, rate: float | None, work_dir: Path
) -> dict:
    """Simulate + ingest `gen_days` days, then prepare the last day's history and clusters (all on Sail), unless
    `lake` already holds all of it; returns what it did."""
    dates = [START + dt.timedelta(days=i) for i in range(gen_days)]
    bench_day = dates[-1]
    window = {bench_day - dt.timedelta(days=i) for i in range(window_days)}
    if (
        set(dates) <= table_days(lake, "requests")
        and window <= table_days(lake, "account_daily")
        and bench_day in table_days(lake, "account_clusters", "feature_date")
    ):
        log(f"reusing {lake} ({bronze_records(lake, [bench_day]):,} bronze records on {bench_day})")
        return {"reused": True}
    shutil.rmtree(lake, ignore_errors=True)
    shutil.rmtree(f"{lake}_truth", ignore_errors=True)
    rate = rate or calibrate(work_dir)
    accounts = max(1000, int(records_per_day / rate))
    log(f"generating {lake.name}: {accounts:,} accounts x {gen_days} days (~{records_per_day:,} records a day)")
    stages = {}
    for stage in ("simulate", "ingest", "prepare"):
        stages[stage] = run_child(
            [
                sys.executable,
                str(BENCH_DIR / "run_stage.py"),
                stage,
                str(lake),
                START.isoformat(),
                str(gen_days),
                str(accounts),
                str(window_days),
            ]
        )
        log(f"  {stage}: {stages[stage]['records']:,} records in {stages[stage]['wall_s']:.1f} s")
    return {
        "reused": False,
        "accounts": accounts,
        "records_per_account_day": rate,
        **{f"{stage}_s": stages[stage]["wall_s"] for stage in stages},
        "history_days_copied": len(stages["prepare"].get("history_days", [])),
    }


def replicate(
    source: Path, target: Path, target_records: int, source_records: int, bench_day: dt.date, workers: int | None
) -> dict:
    copies = math.ceil(target_records / source_records)
    if bench_day in table_days(target, "requests") and table_days(target, "account_daily") == table_days(
        source, "account_daily"
    ):
        log(f"reusing replicated lake {target}")
        return {"reused": True, "copies": copies}
    shutil.rmtree(target, ignore_errors=True)
    log(f"replicating {source.name} x{copies} -> {target.name} (bronze of {bench_day} only)")
    command = [
        sys.executable,
        str(BENCH_DIR / "replicate_lake.py"),
        str(source),
        str(target),
        "--copies",
        str(copies),
        "--day",
        bench_day.isoformat(),
    ]
    if workers:
        command += ["--workers", str(workers)]
    result = run_child(command, echo=True)
    log(
        f"  replicated {result['requests_rows']:,} rows at {result['requests_rows_per_s']:,.0f} rows/s, "
        f"tree peak RSS {result['peak_rss_tree_mib']:,.0f} MiB"
    )
    return {"reused": False, **result}


def engine_lake(shared_lake: Path, scratch: Path) -> Path:
    """A lake of the engine's own: links to the shared input tables, and account_daily as a copy whose data files
    are hard links (the engine replaces the benchmark day in its copy; the shared files are never rewritten)."""
    lake = scratch / "lake"
    lake.mkdir(parents=True)
    for name in LINKED_TABLES:
        if (shared_lake / name).exists():
            (lake / name).symlink_to(shared_lake / name, target_is_directory=True)
    shutil.copytree(
        shared_lake / "account_daily",
        lake / "account_daily",
        copy_function=os.link,
        ignore=shutil.ignore_patterns("_delta_log"),
    )
    shutil.copytree(shared_lake / "account_daily" / "_delta_log", lake / "account_daily" / "_delta_log")
    return lake


# --- engines ------------------------------------------------------------------------------------------


def gpu_present() -> str | None:
    if shutil.which("nvidia-smi") is None:
        return None
    listing = subprocess.run(["nvidia-smi", "-L"], capture_output=True, text=True, timeout=30, check=False)
    return listing.stdout.strip().splitlines()[0] if listing.returncode == 0 and listing.stdout.strip() else None


def unavailable_reason(engine: str) -> str | None:
    """Why `engine` cannot run on this machine, or None."""
    if engine == "jvm-delta":
        if shutil.which("java") is None:
            return "no java on PATH (JVM Spark 4 needs Java 17/21)"
        try:
            from tests.helpers.spark_servers import spark_home

            spark_home()
        except RuntimeError as missing:
            return str(missing)
    if engine == "jvm-local":
        if shutil.which("java") is None:
            return "no java on PATH (JVM Spark 4 needs Java 17/21)"
        if not JVM_PYTHON.exists():
            return f"{JVM_PYTHON} missing: run `bash benchmarks/jvm_baseline_env.sh` first"
    if engine == "cudf":
        if gpu_present() is None:
            return "no NVIDIA GPU visible (nvidia-smi -L lists none)"
        if importlib.util.find_spec("cudf") is None:
            return "RAPIDS cuDF is not installed in this interpreter"
    return None


def run_engine(engine: str, lake: Path, day: dt.date, work_dir: Path, args, checksum: bool) -> dict:
    scratch = Path(tempfile.mkdtemp(prefix=f"{engine}-", dir=work_dir))
    try:
        stage_lake = lake if engine in SPARK_PARQUET_ENGINES else engine_lake(lake, scratch)
        python, env = sys.executable, {}
        if engine == "jvm-local":
            python = str(JVM_PYTHON)
            # local[*] runs the executors inside the driver JVM; its 1 GiB default heap is no baseline
            env["PYSPARK_SUBMIT_ARGS"] = f"--driver-memory {args.jvm_driver_memory} pyspark-shell"
        command = [
            python,
            str(BENCH_DIR / "engine_stage.py"),
            engine,
            str(stage_lake),
            day.isoformat(),
            str(scratch),
            str(args.shuffle_partitions),
            str(args.passes),
        ]
        with GpuSampler() as gpu:
            child = run_child(command, env=env, timeout_s=args.timeout_s, echo=args.verbose)
        child["gpu"] = gpu.summary() if engine == "cudf" else None
        if checksum and engine not in SPARK_PARQUET_ENGINES:
            child["checksums"] = output_checksums(stage_lake, day)
        return child
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def _spread(values: list[float]) -> dict:
    return {"median": statistics.median(values), "min": min(values), "max": max(values)}


def summarize(engine: str, records: int, children: list[dict]) -> dict:
    """Median and min-max over runs: cold = each run's first pass, warm = its later passes."""
    cold = [c["passes"][0] for c in children]
    warm = [p for c in children for p in c["passes"][1:]]
    cold_stage = [p["stage_s"] for p in cold]
    starts = [c["engine_start_s"] for c in children]
    accounts = cold[0]["account_features_rows"]
    peak_device = [((c.get("memory_report") or {}).get("peak_device_bytes")) for c in children]
    gpu = [c["gpu"] for c in children if c.get("gpu")]
    return {
        "engine": engine,
        "status": "ok",
        "runs": len(children),
        "records": records,
        "account_daily_rows": cold[0]["account_daily_rows"],
        "accounts": accounts,
        "cold_stage_s": _spread(cold_stage),
        "cold_end_to_end_s": _spread([s + t for s, t in zip(cold_stage, starts)]),
        "cold_aggregate_s": _spread([p["aggregate_s"] for p in cold]),
        "cold_features_s": _spread([p["features_s"] for p in cold]),
        "engine_start_s": _spread(starts),
        "warm_stage_s": _spread([p["stage_s"] for p in warm]) if warm else None,
        "records_per_s": records / statistics.median(cold_stage),
        "records_per_s_spread": _spread([records / s for s in cold_stage]),
        "accounts_per_s": accounts / statistics.median(cold_stage),
        "warm_records_per_s": records / statistics.median([p["stage_s"] for p in warm]) if warm else None,
        "cpu_s": _spread([c["cpu_tree_s"] for c in children]),
        # CPU seconds include engine start; on a shared machine they move far less than wall time does
        "records_per_cpu_s": records
        * len(children[0]["passes"])
        / statistics.median(c["cpu_tree_s"] for c in children),
        "peak_rss_mib": max(c["peak_rss_tree_mib"] for c in children),
        "peak_gpu_mib": max(peak_device) / 2**20 if all(v is not None for v in peak_device) else None,
        "gpu": {
            "mean_utilisation_pct": statistics.fmean(g["mean_utilisation_pct"] for g in gpu),
            "max_utilisation_pct": max(g["max_utilisation_pct"] for g in gpu),
        }
        if gpu
        else None,
        "checksums": children[0].get("checksums"),
        "children": children,
    }


def ratios(runs: dict[str, dict]) -> dict:
    """Cold records/s ratios between engines that ran; cuDF is compared with Sail on the same real jobs."""
    ok = {name: run for name, run in runs.items() if run.get("status") == "ok"}

    def ratio(numerator: str, denominator: str) -> float | None:
        if numerator in ok and denominator in ok:
            return ok[numerator]["records_per_s"] / ok[denominator]["records_per_s"]
        return None

    basis = "embedded-delta" if "embedded-delta" in ok else "embedded"
    return {
        "cudf_vs_sail": ratio("cudf", basis),
        "cudf_vs_sail_basis": basis,
        "cudf_vs_pandas": ratio("cudf", "pandas"),
        "pandas_vs_sail": ratio("pandas", basis),
        "sail_vs_jvm_delta": ratio("embedded-delta", "jvm-delta"),
        "sail_cluster_vs_jvm_delta": ratio("sail-cluster", "jvm-delta"),
        "sail_vs_jvm": ratio("embedded", "jvm-local"),
    }


def benchmark_lake(
    lake: Path,
    size_label: str,
    engines: list[str],
    skipped: dict[str, str],
    day: dt.date,
    work_dir: Path,
    args,
    setup: dict,
) -> dict:
    records = bronze_records(lake, [day])
    log(f"== {size_label}: {records:,} bronze records on {day}, {args.window_days}-day window")
    runs: dict[str, dict] = {}
    reference: tuple[str, dict] | None = None
    for engine in engines:
        if engine in skipped:
            runs[engine] = {"engine": engine, "status": "skipped", "reason": skipped[engine]}
            log(f"  {engine}: SKIPPED ({skipped[engine]})")
            continue
        children = []
        try:
            for number in range(args.runs):
                log(f"  {engine}: run {number + 1}/{args.runs} (load {os.getloadavg()[0]:.1f})")
                children.append(run_engine(engine, lake, day, work_dir, args, checksum=number == 0))
        except ChildFailed as failure:
            runs[engine] = {"engine": engine, "status": "failed", "reason": str(failure), "output_tail": failure.tail}
            log(f"  {engine}: FAILED ({failure}); last output:\n      " + "\n      ".join(failure.tail[-12:]))
            continue
        run = runs[engine] = summarize(engine, records, children)
        if run["checksums"] is not None:
            if reference is None:
                reference = (engine, run["checksums"])
                run["checksum_match"] = {"against": engine, "equal": True, "differences": []}
            else:
                differences = compare(reference[1], run["checksums"])
                run["checksum_match"] = {"against": reference[0], "equal": not differences, "differences": differences}
        gpu = f", peak GPU {run['peak_gpu_mib']:,.0f} MiB" if run["peak_gpu_mib"] is not None else ""
        match = run.get("checksum_match")
        log(
            f"  {engine}: cold {run['cold_stage_s']['median']:.1f} s (+ start {run['engine_start_s']['median']:.1f} s),"
            f" warm {run['warm_stage_s']['median'] if run['warm_stage_s'] else float('nan'):.1f} s, "
            f"{run['records_per_s']:,.0f} records/s, CPU {run['cpu_s']['median']:.0f} s, peak RSS "
            f"{run['peak_rss_mib']:,.0f} MiB{gpu}; outputs "
            f"{'match ' + match['against'] if match and match['equal'] else 'DIFFER: ' + str(match['differences'][:3]) if match else 'not checked'}"
        )
    return {
        "size": size_label,
        "records": records,
        "day": day.isoformat(),
        "window_days": args.window_days,
        "lake_setup": setup,
        "runs": runs,
        "ratios": ratios(runs),
    }


# --- report -------------------------------------------------------------------------------------------


def _fmt(value, pattern: str, empty: str = "-", suffix: str = "") -> str:
    return empty if value is None else format(value, pattern) + suffix


def _spread_text(spread: dict | None, pattern: str = ".1f") -> str:
    if not spread:
        return "-"
    return f"{format(spread['median'], pattern)} ({format(spread['min'], pattern)}-{format(spread['max'], pattern)})"


def _records_per_cpu_s(run: dict) -> str:
    if "records_per_cpu_s" in run:
        return f"{run['records_per_cpu_s']:,.0f}"
    passes = len(run["children"][0]["passes"]) if run.get("children") else None
    return f"{run['records'] * passes / run['cpu_s']['median']:,.0f}" if passes else "-"


def markdown(report: dict) -> str:
    machine = report["machine"]
    lines = [
        f"# Engine benchmark: {report['label']}",
        "",
        f"Machine: {machine['cpu_model']}, {machine['affinity_cpus']} CPUs, {machine['memory_gib']} GiB; "
        f"GPU: {report['gpu'] or 'none'}. Started {report['started_at']}; 1-minute load average "
        f"{report.get('load_before', float('nan')):.1f} before, {report.get('load_after', float('nan')):.1f} after.",
        "",
        f"Stage = the nightly aggregate + features jobs for one day with a {report['window_days']}-day window of "
        "account_daily behind it, Delta in and out; records = that day's bronze rows; accounts = account_features "
        f"rows. {report['runs']} runs per engine, each a fresh process: **cold** = its first pass (engine start "
        "listed apart; end to end adds it), **warm** = a second pass in the same process. Values are median "
        "(min-max) over runs; records/s and accounts/s use the cold median. CPU s (user + system, engine start and "
        "every pass) and peak RSS cover the child's whole process tree; records / CPU s = records x passes / CPU s. "
        "Outputs are checksummed per engine and compared with the first engine's.",
        "",
        "| size | records | engine | cold stage s | cold end to end s | warm stage s | aggregate s | features s | "
        "records/s (cold) | accounts/s | CPU s (all passes) | records / CPU s | peak RSS MiB | peak GPU MiB | "
        "GPU util % | outputs |",
        "|---|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    for size in report["sizes"]:
        for engine, run in size["runs"].items():
            if run["status"] != "ok":
                lines.append(
                    f"| {size['size']} | {size['records']:,} | {engine} | {run['status']}: "
                    f"{run['reason']} | | | | | | | | | | | | |"
                )
                continue
            match = run.get("checksum_match")
            outputs = (
                "-"
                if not match
                else "reference"
                if match["against"] == engine
                else f"= {match['against']}"
                if match["equal"]
                else f"DIFFER from {match['against']}"
            )
            gpu = run.get("gpu") or {}
            lines.append(
                f"| {size['size']} | {size['records']:,} | {engine} | {_spread_text(run['cold_stage_s'])} | "
                f"{_spread_text(run['cold_end_to_end_s'])} | {_spread_text(run['warm_stage_s'])} | "
                f"{run['cold_aggregate_s']['median']:.1f} | {run['cold_features_s']['median']:.1f} | "
                f"{run['records_per_s']:,.0f} | {run['accounts_per_s']:,.0f} | {_spread_text(run['cpu_s'], '.0f')} | "
                f"{_records_per_cpu_s(run)} | {run['peak_rss_mib']:,.0f} | {_fmt(run['peak_gpu_mib'], ',.0f')} | "
                f"{_fmt(gpu.get('mean_utilisation_pct'), '.0f')} | {outputs} |"
            )
    lines += [
        "",
        "| size | records | cuDF / Sail (basis) | cuDF / pandas | pandas / Sail | Sail / JVM+Delta |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for size in report["sizes"]:
        r = size["ratios"]
        lines.append(
            f"| {size['size']} | {size['records']:,} | {_fmt(r['cudf_vs_sail'], '.1f', suffix='x')} "
            f"({r['cudf_vs_sail_basis']}) | {_fmt(r['cudf_vs_pandas'], '.1f', suffix='x')} | "
            f"{_fmt(r['pandas_vs_sail'], '.2f', suffix='x')} | {_fmt(r.get('sail_vs_jvm_delta'), '.2f', suffix='x')} |"
        )
    if report.get("skipped"):
        lines += ["", "Skipped engines: " + "; ".join(f"{k}: {v}" for k, v in report["skipped"].items())]
    for size in report["sizes"]:
        setup = size["lake_setup"]
        if setup.get("history_days_copied"):
            lines += [
                "",
                f"History for {size['size']}: {setup['history_days_copied']} of the window's earlier days are "
                "copies of generated days' account_daily rows (run_stage.py prepare).",
            ]
        if setup.get("replication") and not setup["replication"].get("reused"):
            rep = setup["replication"]
            lines += [
                "",
                f"Replication for {size['size']}: x{rep['copies']} in {rep['seconds']:.1f} s "
                f"({rep['requests_rows_per_s']:,.0f} request rows/s, {rep['workers']} threads).",
            ]
    if report.get("note"):
        lines += ["", report["note"]]
    return "\n".join(lines) + "\n"


def parse_sizes(text: str) -> list[int]:
    return [int(float(item)) for item in text.split(",") if item.strip()]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--engines", default="embedded-delta,pandas,cudf", help=f"comma-separated, from {', '.join(BENCH_ENGINES)}"
    )
    parser.add_argument(
        "--records",
        type=parse_sizes,
        default=[2_000_000],
        help="bronze records of the benchmark day, one lake per size, e.g. 2e6,2e7",
    )
    parser.add_argument("--gen-days", type=int, default=2, help="days simulated and ingested (the last is benchmarked)")
    parser.add_argument("--window-days", type=int, default=28, help="account_daily days behind the benchmark day")
    parser.add_argument("--runs", type=int, default=3, help="fresh processes per engine (cold runs)")
    parser.add_argument("--passes", type=int, default=2, help="passes per process: 1 cold + the rest warm")
    parser.add_argument(
        "--replicate-to",
        type=float,
        default=None,
        help="also benchmark the largest lake's day replicated to at least this many records",
    )
    parser.add_argument("--replicated-engines", default="cudf", help="engines for the replicated lake (frame engines)")
    parser.add_argument("--replicate-workers", type=int, default=None)
    parser.add_argument("--label", default=None, help="run label, part of the result file names (cpu-2core, h100)")
    parser.add_argument("--work-dir", default=None, help="lakes and scratch (kept, so a rerun reuses the lakes)")
    parser.add_argument("--out", default=str(BENCH_DIR / "results"))
    parser.add_argument(
        "--shuffle-partitions", type=int, default=8, help="spark.sql.shuffle.partitions, all Spark engines"
    )
    parser.add_argument("--jvm-driver-memory", default=None, help="JVM heap for jvm-local (default: half the RAM)")
    parser.add_argument("--timeout-s", type=float, default=None, help="kill an engine's run after this long")
    parser.add_argument("--note", default=None, help="free text added to the markdown")
    parser.add_argument("--verbose", action="store_true", help="echo the engines' own output")
    parser.add_argument(
        "--render",
        metavar="JSON",
        default=None,
        help="only rewrite the markdown next to an existing engines-<label>.json (no runs)",
    )
    args = parser.parse_args(argv)
    if args.render:
        json_path = Path(args.render)
        json_path.with_suffix(".md").write_text(markdown(json.loads(json_path.read_text())))
        log(f"written {json_path.with_suffix('.md')}")
        return
    if not args.label:
        parser.error("--label is required (it names the result files, e.g. cpu-2core or h100)")
    if args.runs < 1 or args.passes < 1 or args.gen_days < 1 or args.window_days < 1:
        parser.error("--runs, --passes, --gen-days and --window-days must be at least 1")
    if args.jvm_driver_memory is None:
        total_memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
        args.jvm_driver_memory = f"{max(1, int(total_memory / 2**30 / 2))}g"
    engines = [e.strip() for e in args.engines.split(",") if e.strip()]
    replicated_engines = [e.strip() for e in args.replicated_engines.split(",") if e.strip()]
    unknown = sorted(set(engines + replicated_engines) - set(BENCH_ENGINES))
    if unknown:
        parser.error(f"unknown engines {unknown}; choose from {', '.join(BENCH_ENGINES)}")
    not_frames = sorted(set(replicated_engines) - set(FRAME_ENGINES))
    if args.replicate_to and not_frames:
        parser.error(
            f"--replicated-engines {not_frames}: a replicated lake's account_daily is written by delta-rs, "
            "which Sail 0.7 cannot replaceWhere list columns into; only pandas and cudf run there"
        )
    wanted = engines + (replicated_engines if args.replicate_to else [])
    skipped = {e: reason for e in dict.fromkeys(wanted) if (reason := unavailable_reason(e))}
    for engine, reason in skipped.items():
        log(f"{engine} will be SKIPPED: {reason}")

    work_dir = Path(args.work_dir or tempfile.mkdtemp(prefix="dg-engines-")).resolve()
    work_dir.mkdir(parents=True, exist_ok=True)
    bench_day = START + dt.timedelta(days=args.gen_days - 1)
    began, load_before = time.time(), os.getloadavg()[0]
    sizes, lakes = [], []
    rate = None
    for target in sorted(args.records):
        lake = work_dir / f"lake_{target}_{args.gen_days}d_w{args.window_days}"
        setup = generate_lake(lake, target, args.gen_days, args.window_days, rate, work_dir)
        rate = setup.get("records_per_account_day", rate)
        lakes.append(lake)
        sizes.append(benchmark_lake(lake, f"{target / 1e6:g}M", engines, skipped, bench_day, work_dir, args, setup))
    if args.replicate_to:
        source = lakes[-1]
        target_lake = work_dir / f"lake_replicated_{int(args.replicate_to)}_w{args.window_days}"
        replication = replicate(
            source,
            target_lake,
            int(args.replicate_to),
            bronze_records(source, [bench_day]),
            bench_day,
            args.replicate_workers,
        )
        sizes.append(
            benchmark_lake(
                target_lake,
                f"{args.replicate_to / 1e6:g}M (replicated)",
                replicated_engines,
                skipped,
                bench_day,
                work_dir,
                args,
                {"replication": replication},
            )
        )

    report = {
        "benchmark": "engines",
        "label": args.label,
        "started_at": dt.datetime.fromtimestamp(began, dt.UTC).isoformat(timespec="seconds"),
        "elapsed_s": time.time() - began,
        "machine": machine_facts(),
        "gpu": gpu_present(),
        "load_before": load_before,
        "load_after": os.getloadavg()[0],
        "gen_days": args.gen_days,
        "window_days": args.window_days,
        "runs": args.runs,
        "passes": args.passes,
        "shuffle_partitions": args.shuffle_partitions,
        "skipped": skipped,
        "note": args.note,
        "rss_measurement": "/proc: summed RSS of the child process and all its descendants, sampled every "
        f"{SAMPLE_INTERVAL_S} s (shared pages counted once per process)",
        "sizes": sizes,
    }
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    json_path, md_path = out / f"engines-{args.label}.json", out / f"engines-{args.label}.md"
    json_path.write_text(json.dumps(report, indent=2, default=str) + "\n")
    md_path.write_text(markdown(report))
    print("\n" + markdown(report))
    log(f"written {json_path} and {md_path}")


if __name__ == "__main__":
    main()
