"""Daily aggregation + account features on several engines over the same generated lake, in one run.

Usage:
  python benchmarks/engines.py --engines embedded,jvm-local,pandas[,cudf] --records 2000000,5000000 \
      [--replicate-to 200000000] --days 7 --label cpu-2core [--work-dir /tmp/dg-engines]

Engines (BENCH_ENGINES):
  embedded        Sail, embedded in the Python process: the Spark Parquet stage (spark_parquet_stage.py)
  jvm-local       classic JVM PySpark, local[*]: the SAME Spark Parquet stage, run by the .bench-jvm
                  interpreter (benchmarks/jvm_baseline_env.sh builds it)
  embedded-delta  Sail running the real jobs (jobs/aggregate.py + jobs/features.py), Delta in and out
  jvm-delta       JVM Spark 4.2 + delta-spark (Spark Connect server from infra/spark-connect/cpu.conf, local[*],
                  the `spark` extra) running the same real jobs, Delta in and out
  sail-cluster    Sail's local-cluster mode (2 worker processes) running the same real jobs, Delta in and out
  pandas, cudf    the frame engines (lake/frames.py) running the real jobs, Delta in and out
JVM Spark cannot read or write Delta here (no delta-spark jars without Maven), which is why the Sail/JVM
comparison runs a Parquet variant of the stage on both; the frame engines and embedded-delta run the real
jobs. The markdown report states this.

Per size: simulate + ingest a lake with the existing jobs (or reuse one already in --work-dir), optionally
replicate the largest one to >= --replicate-to records (benchmarks/replicate_lake.py), then run each
engine's stage in a fresh child process (benchmarks/engine_stage.py). The parent samples the child's whole
process tree (the JVM is a child of the Python process for jvm-local; the Sail server is in-process) from
/proc every 0.1 s and reports the peak of the summed RSS. GPU memory is the cuDF engine's own
memory_report()["peak_device_bytes"] (RMM statistics).

Records = bronze `requests` rows processed, all days, counted from the Delta log. Results go to
<out>/engines-<label>.json and .md.
"""

from __future__ import annotations

import argparse
import datetime as dt
import importlib.util
import json
import math
import os
import shutil
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

from machine import machine_facts  # noqa: E402

START = dt.date(2026, 1, 5)
BENCH_ENGINES = ("embedded", "jvm-local", "embedded-delta", "jvm-delta", "sail-cluster", "pandas", "cudf")
SPARK_PARQUET_ENGINES = ("embedded", "jvm-local")
# Input tables the real jobs read; each real-job engine gets its own lake linking to them.
INPUT_TABLES = ("requests", "accounts", "model_releases", "asn_info")
JVM_PYTHON = REPO / ".bench-jvm" / "bin" / "python"
SAMPLE_INTERVAL_S = 0.1
CALIBRATION_ACCOUNTS = 3000


def log(message: str) -> None:
    print(f"[engines {time.strftime('%H:%M:%S')}] {message}", flush=True)


# --- child processes ----------------------------------------------------------------------------------

def _process_table() -> dict[int, tuple[int, int, float]]:
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
        fields = stat[stat.rindex(")") + 2:].split()
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
        table = _process_table()
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


def run_child(command: list[str], env: dict | None = None, timeout_s: float | None = None,
              echo: bool = False) -> dict:
    """Run a child that prints `RESULT {json}`; returns that result plus wall time and the tree's peak RSS."""
    began = time.perf_counter()
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, cwd=REPO,
                               env={**os.environ, **(env or {})})
    result, tail = None, []
    timer = threading.Timer(timeout_s, process.kill) if timeout_s else None
    if timer:
        timer.start()
    with TreeMemorySampler(process.pid) as sampler:
        for line in process.stdout:
            if line.startswith("RESULT "):
                result = json.loads(line[len("RESULT "):])
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


# --- lakes --------------------------------------------------------------------------------------------

def bronze_records(lake: Path, dates: list[dt.date]) -> int:
    """Bronze request rows of `dates`, from the Delta log's per-file record counts."""
    import pyarrow as pa
    from deltalake import DeltaTable

    actions = pa.table(DeltaTable(str(lake / "requests")).get_add_actions(flatten=True))
    wanted = set(dates)
    return sum(rows for rows, day in zip(actions.column("num_records").to_pylist(),
                                         actions.column("partition.event_date").to_pylist()) if day in wanted)


def lake_days(lake: Path) -> set[dt.date]:
    from deltalake import DeltaTable

    if not DeltaTable.is_deltatable(str(lake / "requests")):
        return set()
    return {dt.date.fromisoformat(p["event_date"]) for p in DeltaTable(str(lake / "requests")).partitions()}


def calibrate(work_dir: Path) -> float:
    """Bronze-bound simulator records per account-day, measured on a small population (it scales linearly)."""
    lake = work_dir / "calibration"
    shutil.rmtree(lake, ignore_errors=True)
    result = run_child([sys.executable, str(BENCH_DIR / "run_stage.py"), "simulate", str(lake), START.isoformat(),
                        "2", str(CALIBRATION_ACCOUNTS)])
    shutil.rmtree(lake, ignore_errors=True)
    shutil.rmtree(f"{lake}_truth", ignore_errors=True)
    return result["records"] / (CALIBRATION_ACCOUNTS * 2)


def generate_lake(lake: Path, target_records: int, days: int, rate: float | None, work_dir: Path) -> dict:
    """Simulate + ingest (existing jobs, Sail) unless `lake` already holds all days; returns what it did."""
    dates = [START + dt.timedelta(days=i) for i in range(days)]
    if set(dates) <= lake_days(lake):
        log(f"reusing {lake} ({bronze_records(lake, dates):,} bronze records)")
        return {"reused": True}
    shutil.rmtree(lake, ignore_errors=True)
    shutil.rmtree(f"{lake}_truth", ignore_errors=True)
    rate = rate or calibrate(work_dir)
    accounts = max(1000, int(target_records / (rate * days)))
    log(f"generating {lake.name}: {accounts:,} accounts x {days} days (~{target_records:,} records)")
    stages = {}
    for stage in ("simulate", "ingest"):
        stages[stage] = run_child([sys.executable, str(BENCH_DIR / "run_stage.py"), stage, str(lake),
                                   START.isoformat(), str(days), str(accounts)])
        log(f"  {stage}: {stages[stage]['records']:,} records in {stages[stage]['wall_s']:.1f} s")
    return {"reused": False, "accounts": accounts, "records_per_account_day": rate,
            "simulate_s": stages["simulate"]["wall_s"], "ingest_s": stages["ingest"]["wall_s"]}


def replicate(source: Path, target: Path, target_records: int, source_records: int, workers: int | None) -> dict:
    copies = math.ceil(target_records / source_records)
    dates_present = lake_days(target)
    if dates_present and dates_present == lake_days(source):
        log(f"reusing replicated lake {target}")
        return {"reused": True, "copies": copies}
    shutil.rmtree(target, ignore_errors=True)
    log(f"replicating {source.name} x{copies} -> {target.name}")
    command = [sys.executable, str(BENCH_DIR / "replicate_lake.py"), str(source), str(target), "--copies", str(copies)]
    if workers:
        command += ["--workers", str(workers)]
    result = run_child(command, echo=True)
    log(f"  replicated {result['requests_rows']:,} rows at {result['requests_rows_per_s']:,.0f} rows/s, "
        f"tree peak RSS {result['peak_rss_tree_mib']:,.0f} MiB")
    return {"reused": False, **result}


def engine_lake(shared_lake: Path, scratch: Path) -> Path:
    """A lake of the engine's own: links to the shared input tables, outputs written beside them."""
    lake = scratch / "lake"
    lake.mkdir(parents=True)
    for name in INPUT_TABLES:
        (lake / name).symlink_to(shared_lake / name, target_is_directory=True)
    return lake


# --- engines ------------------------------------------------------------------------------------------

def gpu_present() -> str | None:
    if shutil.which("nvidia-smi") is None:
        return None
    listing = subprocess.run(["nvidia-smi", "-L"], capture_output=True, text=True, timeout=30, check=False)
    return listing.stdout.strip().splitlines()[0] if listing.returncode == 0 and listing.stdout.strip() else None


def unavailable_reason(engine: str) -> str | None:
    """Why `engine` cannot run here, or None."""
    if engine == "jvm-delta":
        if shutil.which("java") is None:
            return "no java on PATH (JVM Spark 4 needs Java 17/21)"
        try:
            from lake.spark_servers import spark_home

            spark_home()
        except RuntimeError as missing:
            return str(missing)
    if engine == "jvm-local":
        if shutil.which("java") is None:
            return "no java on PATH (JVM Spark 4 needs Java 17/21)"
        if not JVM_PYTHON.exists():
            return f"{JVM_PYTHON} missing: run `bash benchmarks/jvm_baseline_env.sh` first"
    if engine in ("pandas", "cudf") and importlib.util.find_spec("lake.frames") is None:
        return "lake/frames.py (the frame engine) is not in this checkout"
    if engine == "cudf":
        if gpu_present() is None:
            return "no NVIDIA GPU visible (nvidia-smi -L lists none)"
        if importlib.util.find_spec("cudf") is None:
            return "RAPIDS cuDF is not installed in this interpreter"
    return None


def run_engine(engine: str, lake: Path, days: int, work_dir: Path, args) -> dict:
    scratch = Path(tempfile.mkdtemp(prefix=f"{engine}-", dir=work_dir))
    try:
        if engine in SPARK_PARQUET_ENGINES:
            stage_lake = lake
        else:
            stage_lake = engine_lake(lake, scratch)
        python, env = sys.executable, {}
        if engine == "jvm-local":
            python = str(JVM_PYTHON)
            # local[*] runs the executors inside the driver JVM; its 1 GiB default heap is no baseline
            env["PYSPARK_SUBMIT_ARGS"] = f"--driver-memory {args.jvm_driver_memory} pyspark-shell"
        command = [python, str(BENCH_DIR / "engine_stage.py"), engine, str(stage_lake), START.isoformat(),
                   str(days), str(scratch), str(args.shuffle_partitions)]
        return run_child(command, env=env, timeout_s=args.timeout_s, echo=args.verbose)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def summarize(engine: str, records: int, child: dict) -> dict:
    report = child.get("memory_report") or {}
    peak_device = report.get("peak_device_bytes")
    return {
        "engine": engine, "status": "ok", "records": records,
        "stage_s": child["stage_s"], "aggregate_s": child["aggregate_s"], "features_s": child["features_s"],
        "engine_start_s": child["engine_start_s"], "process_wall_s": child["process_wall_s"],
        "records_per_s": records / child["stage_s"],
        "peak_rss_mib": child["peak_rss_tree_mib"], "peak_rss_processes": child["peak_rss_tree_processes"],
        "peak_gpu_mib": None if peak_device is None else peak_device / 2**20,
        "cpu_s": child["cpu_tree_s"], "memory_report": child.get("memory_report"), "days": child["days"],
    }


def ratios(runs: dict[str, dict]) -> dict:
    """Throughput ratios between engines that both ran; cuDF is compared with Sail on the same real jobs
    (embedded-delta) when that ran, else with the Sail Parquet stage (said in `cudf_vs_sail_basis`)."""
    ok = {name: run for name, run in runs.items() if run.get("status") == "ok"}

    def ratio(numerator: str, denominator: str) -> float | None:
        if numerator in ok and denominator in ok:
            return ok[numerator]["records_per_s"] / ok[denominator]["records_per_s"]
        return None

    out = {"sail_vs_jvm": ratio("embedded", "jvm-local"), "sail_vs_jvm_delta": ratio("embedded-delta", "jvm-delta"),
           "sail_cluster_vs_jvm_delta": ratio("sail-cluster", "jvm-delta")}
    basis = "embedded-delta" if "embedded-delta" in ok else "embedded"
    out["cudf_vs_sail"], out["cudf_vs_sail_basis"] = ratio("cudf", basis), basis
    out["cudf_vs_pandas"] = ratio("cudf", "pandas")
    out["pandas_vs_sail"] = ratio("pandas", basis)
    return out


def benchmark_lake(lake: Path, size_label: str, engines: list[str], skipped: dict[str, str], days: int,
                   work_dir: Path, args, setup: dict) -> dict:
    dates = [START + dt.timedelta(days=i) for i in range(days)]
    records = bronze_records(lake, dates)
    log(f"== {size_label}: {records:,} bronze records over {days} days")
    runs: dict[str, dict] = {}
    for engine in engines:
        if engine in skipped:
            runs[engine] = {"engine": engine, "status": "skipped", "reason": skipped[engine]}
            log(f"  {engine}: SKIPPED ({skipped[engine]})")
            continue
        log(f"  {engine}: running")
        try:
            child = run_engine(engine, lake, days, work_dir, args)
        except ChildFailed as failure:
            runs[engine] = {"engine": engine, "status": "failed", "reason": str(failure), "output_tail": failure.tail}
            log(f"  {engine}: FAILED ({failure}); last output:\n      " + "\n      ".join(failure.tail[-12:]))
            continue
        runs[engine] = summarize(engine, records, child)
        run = runs[engine]
        gpu = f", peak GPU {run['peak_gpu_mib']:,.0f} MiB" if run["peak_gpu_mib"] is not None else ""
        log(f"  {engine}: {run['stage_s']:.1f} s (aggregate {run['aggregate_s']:.1f} s + features "
            f"{run['features_s']:.1f} s; engine start {run['engine_start_s']:.1f} s), {run['records_per_s']:,.0f} "
            f"records/s, peak RSS {run['peak_rss_mib']:,.0f} MiB{gpu}")
    return {"size": size_label, "records": records, "days": days, "lake_setup": setup, "runs": runs,
            "ratios": ratios(runs)}


# --- report -------------------------------------------------------------------------------------------

def _fmt(value, pattern: str, empty: str = "-", suffix: str = "") -> str:
    return empty if value is None else format(value, pattern) + suffix


def markdown(report: dict) -> str:
    machine = report["machine"]
    lines = [
        f"# Engine benchmark: {report['label']}",
        "",
        f"Machine: {machine['cpu_model']}, {machine['affinity_cpus']} CPUs, {machine['memory_gib']} GiB; "
        f"GPU: {report['gpu'] or 'none'}. Started {report['started_at']}; {report['days']} days per lake.",
        "",
        "Stage = daily aggregation + account features for every day of the lake; records = bronze request rows "
        "(all days). Time is the stage's own, engine start excluded (listed separately); peak RSS is the summed "
        "RSS of the child process tree (JVM included), sampled every 0.1 s; peak GPU is RMM's high-water mark; "
        "CPU s is user + system time of the whole child tree, engine start included.",
        "",
        "**What runs:** `embedded-delta` (Sail in process), `sail-cluster` (Sail local-cluster, 2 workers), "
        "`jvm-delta` (JVM Spark 4.2 + delta-spark 4.4 Connect server, local[*], from infra/spark-connect/cpu.conf), "
        "`pandas` and `cudf` run the real jobs (jobs/aggregate.py, jobs/features.py) with Delta in and out; for "
        "the two server engines the server start is the engine start and its processes count in the RSS. "
        "`embedded` (Sail) and `jvm-local` (JVM PySpark, local[*], no Delta) run the same Parquet variant of the "
        "stage (benchmarks/spark_parquet_stage.py).",
        "",
        "| size | records | engine | stage s | aggregate s | features s | engine start s | records/s | "
        "peak RSS MiB | peak GPU MiB | CPU s (tree) |",
        "|---|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for size in report["sizes"]:
        for engine, run in size["runs"].items():
            if run["status"] != "ok":
                lines.append(f"| {size['size']} | {size['records']:,} | {engine} | {run['status']}: "
                             f"{run['reason']} | | | | | | | |")
                continue
            lines.append(
                f"| {size['size']} | {size['records']:,} | {engine} | {run['stage_s']:.1f} | {run['aggregate_s']:.1f} | "
                f"{run['features_s']:.1f} | {run['engine_start_s']:.1f} | {run['records_per_s']:,.0f} | "
                f"{run['peak_rss_mib']:,.0f} | {_fmt(run['peak_gpu_mib'], ',.0f')} | {_fmt(run.get('cpu_s'), ',.0f')} |")
    lines += ["", "| size | records | Sail / JVM | cuDF / Sail (basis) | cuDF / pandas | pandas / Sail |",
              "|---|---:|---:|---:|---:|---:|"]
    for size in report["sizes"]:
        r = size["ratios"]
        lines.append(f"| {size['size']} | {size['records']:,} | {_fmt(r['sail_vs_jvm'], '.2f', suffix='x')} | "
                     f"{_fmt(r['cudf_vs_sail'], '.1f', suffix='x')} ({r['cudf_vs_sail_basis']}) | "
                     f"{_fmt(r['cudf_vs_pandas'], '.1f', suffix='x')} | {_fmt(r['pandas_vs_sail'], '.2f', suffix='x')} |")
    if any(size["ratios"].get("sail_vs_jvm_delta") for size in report["sizes"]):
        lines += ["", "| size | embedded Sail / JVM Spark+Delta | Sail local-cluster / JVM Spark+Delta |",
                  "|---|---:|---:|"]
        for size in report["sizes"]:
            r = size["ratios"]
            lines.append(f"| {size['size']} | {_fmt(r.get('sail_vs_jvm_delta'), '.2f', suffix='x')} | "
                         f"{_fmt(r.get('sail_cluster_vs_jvm_delta'), '.2f', suffix='x')} |")
    if report.get("skipped"):
        lines += ["", "Skipped engines: " + "; ".join(f"{k}: {v}" for k, v in report["skipped"].items())]
    for size in report["sizes"]:
        setup = size["lake_setup"]
        if setup.get("replication") and not setup["replication"].get("reused"):
            rep = setup["replication"]
            lines += ["", f"Replication for {size['size']}: x{rep['copies']} in {rep['seconds']:.1f} s "
                          f"({rep['requests_rows_per_s']:,.0f} request rows/s, {rep['workers']} threads), "
                          f"peak RSS {rep['peak_rss_tree_mib']:,.0f} MiB."]
    if report.get("note"):
        lines += ["", report["note"]]
    return "\n".join(lines) + "\n"


def parse_sizes(text: str) -> list[int]:
    return [int(float(item)) for item in text.split(",") if item.strip()]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--engines", default="embedded,jvm-local,pandas,cudf",
                        help=f"comma-separated, from {', '.join(BENCH_ENGINES)}")
    parser.add_argument("--records", type=parse_sizes, default=[2_000_000], help="target sizes, e.g. 2e6,5e6")
    parser.add_argument("--replicate-to", type=float, default=None,
                        help="also benchmark the largest lake replicated to at least this many records")
    parser.add_argument("--replicated-engines", default=None,
                        help="engines for the replicated lake (default: --engines)")
    parser.add_argument("--replicate-workers", type=int, default=None)
    parser.add_argument("--days", type=int, default=7)
    parser.add_argument("--label", default=None, help="run label, part of the result file names (cpu-2core, h100)")
    parser.add_argument("--work-dir", default=None, help="lakes and scratch (kept, so a rerun reuses the lakes)")
    parser.add_argument("--out", default=str(BENCH_DIR / "results"))
    parser.add_argument("--shuffle-partitions", type=int, default=8, help="spark.sql.shuffle.partitions, all Spark engines")
    parser.add_argument("--jvm-driver-memory", default=None, help="JVM heap for jvm-local (default: half the RAM)")
    parser.add_argument("--timeout-s", type=float, default=None, help="kill an engine's stage after this long")
    parser.add_argument("--note", default=None, help="free text added to the markdown (e.g. machine load)")
    parser.add_argument("--verbose", action="store_true", help="echo the engines' own output")
    parser.add_argument("--render", metavar="JSON", default=None,
                        help="only rewrite the markdown next to an existing engines-<label>.json (no runs)")
    args = parser.parse_args(argv)
    if args.render:
        json_path = Path(args.render)
        json_path.with_suffix(".md").write_text(markdown(json.loads(json_path.read_text())))
        log(f"written {json_path.with_suffix('.md')}")
        return
    if args.jvm_driver_memory is None:
        total_memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
        args.jvm_driver_memory = f"{max(1, int(total_memory / 2**30 / 2))}g"

    if not args.label:
        parser.error("--label is required (it names the result files, e.g. cpu-2core or h100)")
    engines = [e.strip() for e in args.engines.split(",") if e.strip()]
    replicated_engines = ([e.strip() for e in args.replicated_engines.split(",") if e.strip()]
                          if args.replicated_engines else engines)
    unknown = sorted(set(engines + replicated_engines) - set(BENCH_ENGINES))
    if unknown:
        parser.error(f"unknown engines {unknown}; choose from {', '.join(BENCH_ENGINES)}")
    skipped = {e: reason for e in dict.fromkeys(engines + replicated_engines) if (reason := unavailable_reason(e))}
    for engine, reason in skipped.items():
        log(f"{engine} will be SKIPPED: {reason}")

    work_dir = Path(args.work_dir or tempfile.mkdtemp(prefix="dg-engines-")).resolve()
    work_dir.mkdir(parents=True, exist_ok=True)
    began = time.time()
    sizes, lakes = [], []
    rate = None
    for target in sorted(args.records):
        lake = work_dir / f"lake_{target}"
        setup = generate_lake(lake, target, args.days, rate, work_dir)
        rate = setup.get("records_per_account_day", rate)
        lakes.append(lake)
        sizes.append(benchmark_lake(lake, f"{target / 1e6:g}M", engines, skipped, args.days, work_dir, args, setup))
    if args.replicate_to:
        source = lakes[-1]
        dates = [START + dt.timedelta(days=i) for i in range(args.days)]
        target_lake = work_dir / f"lake_replicated_{int(args.replicate_to)}"
        replication = replicate(source, target_lake, int(args.replicate_to), bronze_records(source, dates),
                                args.replicate_workers)
        sizes.append(benchmark_lake(target_lake, f"{args.replicate_to / 1e6:g}M (replicated)", replicated_engines,
                                    skipped, args.days, work_dir, args, {"replication": replication}))

    report = {"benchmark": "engines", "label": args.label,
              "started_at": dt.datetime.fromtimestamp(began, dt.timezone.utc).isoformat(timespec="seconds"),
              "elapsed_s": time.time() - began, "machine": machine_facts(), "gpu": gpu_present(),
              "days": args.days, "shuffle_partitions": args.shuffle_partitions,
              "jvm_driver_memory": args.jvm_driver_memory, "skipped": skipped, "note": args.note,
              "rss_measurement": "/proc: summed RSS of the child process and all its descendants, sampled every "
                                 f"{SAMPLE_INTERVAL_S} s (shared pages counted once per process)",
              "sizes": sizes}
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    json_path, md_path = out / f"engines-{args.label}.json", out / f"engines-{args.label}.md"
    json_path.write_text(json.dumps(report, indent=2, default=str) + "\n")
    md_path.write_text(markdown(report))
    print("\n" + markdown(report))
    log(f"written {json_path} and {md_path}")


if __name__ == "__main__":
    main()
