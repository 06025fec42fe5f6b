"""Run every benchmark, write ``benchmarks/results/<name>.json``, regenerate ``docs/benchmarks.md``.

    .venv/bin/python -m benchmarks                      everything (a few minutes on 2 cores)
    .venv/bin/python -m benchmarks --baseline f8ce5d1   the timed figures for that revision too
    .venv/bin/python -m benchmarks --only kernel_import --rounds 3
    .venv/bin/python -m benchmarks --docs-only          the page from the results already there

The page is written from the results files, so a partial run keeps the other
figures of the last full one. Timed figures alternate what they compare and
report medians with the machine's load average; counted figures (requests,
rate-limit points) come from the sandbox's call log and GitHub's headers.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable
from typing import Any

from benchmarks import (
    critical_path,
    drill_vs_papermill,
    github_requests,
    history,
    kernel_import,
    path_b_overlap,
    stats,
)
from benchmarks.common import RESULTS, ROOT, write_result

DOC = ROOT / "docs" / "benchmarks.md"


def path_b() -> dict[str, Any]:
    return path_b_overlap.measure(restore=300.0, ssh=45.0, speed=60.0)


def benchmarks(rounds: int, baseline: str = "") -> dict[str, Callable[[], dict[str, Any]]]:
    return {
        "drill_vs_papermill": lambda: drill_vs_papermill.measure(rounds, baseline),
        "kernel_import": lambda: kernel_import.measure(rounds, baseline),
        "github_resolve": github_requests.measure_resolve,
        "github_watch": github_requests.measure_watch,
        "path_b_overlap": path_b,
        "history": history.measure,
        "stats": stats.measure,
        "critical_path": lambda: critical_path.measure(baseline),
    }


def main(argv: list[str] | None = None) -> int:
    all_names = list(benchmarks(0))
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--only", nargs="+", choices=all_names, default=all_names)
    parser.add_argument("--rounds", type=int, default=7, help="rounds of each timed figure")
    parser.add_argument("--baseline", default="", metavar="REV",
                        help="also time this git revision in every round (the 'before' column)")
    parser.add_argument("--docs-only", action="store_true", help="only regenerate the page")
    parser.add_argument("--runs", type=int, default=1, metavar="N",
                        help="drill_vs_papermill: N separate runs, each ratio kept (the last's rounds)")
    args = parser.parse_args(argv)
    if not args.docs_only:
        runs = benchmarks(args.rounds, args.baseline)
        for name in args.only:
            print(f"-- {name}", flush=True)
            figures = runs[name]()
            if name == "drill_vs_papermill" and args.runs > 1:
                figures = separate_runs(runs[name], args.runs)
            print(json.dumps(figures, indent=2))
            print(f"written to {write_result(name, figures)}", flush=True)
    DOC.write_text(render(read_results()))
    print(f"regenerated {DOC.relative_to(ROOT)}")
    return 0


RUN_KEYS = ("ratio", "drill_median_seconds", "papermill_median_seconds", "load_before",
            "load_after")


def separate_runs(measure: Callable[[], dict[str, Any]], count: int) -> dict[str, Any]:
    """``count`` runs of a timed figure: the last one's rounds, and every run's ratio and load."""
    runs = [measure() for _ in range(count)]
    return {**runs[-1], "separate_runs": [{k: f[k] for k in RUN_KEYS} for f in runs]}


def _ratios(f: dict[str, Any]) -> str:
    runs = f.get("separate_runs") or []
    if len(runs) < 2:
        return ""
    each = ", ".join(f"{r['ratio']} (load {r['load_before']}–{r['load_after']})" for r in runs)
    return f"; {len(runs)} separate runs: {each}"


def read_results() -> dict[str, dict[str, Any]]:
    return {path.stem: json.loads(path.read_text()) for path in sorted(RESULTS.glob("*.json"))}


# -- docs/benchmarks.md ---------------------------------------------------------------------------
# "Before" for the counted figures: the same benchmarks on f8ce5d1, the revision before the
# speed-ups (counts do not depend on load). Timed figures take theirs from a --baseline run.
COUNTED_BEFORE = {"github_resolve": "1 (f8ce5d1)",
                  "github_watch": "2, 201 of 203 polls free (f8ce5d1)",
                  "path_b_overlap": "2.0 s (bc2663f: a fixed delay after each poll)"}


def _before_drill(f: dict[str, Any]) -> str:
    if "baseline_ratio" not in f:
        return "1.33 (measured before the speed-ups)"
    return (f"{f['baseline_ratio']} ({f['baseline_drill_median_seconds']} s vs "
            f"{f['papermill_median_seconds']} s; {f['baseline']}, same rounds)")


def _before_import(f: dict[str, Any]) -> str:
    if "baseline_median_milliseconds" not in f:
        return "590 ms (measured before the speed-ups)"
    pandas = "imports pandas" if f["baseline_pandas_imported"] else "no pandas"
    return f"{f['baseline_median_milliseconds']:.0f} ms ({pandas}; {f['baseline']}, same rounds)"


def _before_critical(f: dict[str, Any] | None, key: str, unit: str) -> str:
    if not f or "baseline_path_a" not in f:
        return "not measured"
    return f"{f['baseline_path_a'][key]}{unit} ({f['baseline']})"


def _live_ratio(f: dict[str, Any]) -> str:
    live = f.get("live_drill")
    if not live:
        return "not measured"
    return (f"**{live['ratio']}** ({live['median_seconds']} s vs "
            f"{live['baseline_median_seconds']} s, {live['rounds']} rounds)")


def _summary_rows(r: dict[str, dict[str, Any]]) -> list[tuple[str, str, str, str]]:
    def get(name: str, render: Callable[[dict[str, Any]], str]) -> str:
        return render(r[name]) if name in r else "not measured"

    return [
        ("Path A dry-run drill wall ÷ bare `papermill` (2-cell notebook), alternated", "≤ 0.75",
         get("drill_vs_papermill", lambda f: f"**{f['ratio']}** ({f['drill_median_seconds']} s vs "
                                             f"{f['papermill_median_seconds']} s{_ratios(f)})"),
         _before_drill(r.get("drill_vs_papermill", {}))),
        ("`import rollback_helpers.runbook.path_a` in the kernel", "≤ 150 ms",
         get("kernel_import", lambda f: f"**{f['median_milliseconds']:.0f} ms**"
                                        + (" (no pandas)" if not f["pandas_imported"]
                                           else " (imports pandas)")),
         _before_import(r.get("kernel_import", {}))),
        ("GitHub requests to resolve a target among 10,000 records", "≤ 2",
         get("github_resolve", lambda f: f"**{f['requests']}**"), COUNTED_BEFORE["github_resolve"]),
        ("Rate-limit points to watch a 10-minute workflow run", "≤ 5",
         get("github_watch", lambda f: f"**{f['rate_limit_points']}** ({f['free_304_polls']} of "
                                       f"{f['polls']} polls were free 304s)"),
         COUNTED_BEFORE["github_watch"]),
        ("Path B restore + wait above the restore time alone", "≤ 1 s",
         get("path_b_overlap", lambda f: f"**{f['overhead_over_restore_alone_seconds']} s**"),
         COUNTED_BEFORE["path_b_overlap"]),
        ("Serial GitHub requests before the dispatch (live Path A, sandbox)", "≤ 5",
         get("critical_path", lambda f: f"**{f['path_a']['serial_github_requests_before_dispatch']}"
                                        f"** (of {f['path_a']['github_requests_before_dispatch']})"),
         _before_critical(r.get("critical_path"), "serial_github_requests_before_dispatch", "")),
        ("Enter → dispatch at 250 ms/GitHub request, 1.5 s/flyctl (virtual, no kernel start)",
         "≤ 2.5 s",
         get("critical_path", lambda f: f"**{f['path_a']['enter_to_dispatch_seconds']} s**"),
         _before_critical(r.get("critical_path"), "enter_to_dispatch_seconds", " s")),
        ("Live Path A drill at `--speed 0` ÷ e264ba7's (before the metrics), alternated", "≤ 1.0",
         get("critical_path", _live_ratio), "1.0 (e264ba7 itself)"),
        ("`history` over 50 records", "≤ 2 s",
         get("history", lambda f: f"**{f['median_seconds']} s** (local folder; S3 on loopback "
                                   f"{f['s3_loopback_no_verify_seconds']} s)"), "—"),
        ("`stats` over 10,000 records (local folder) and 1,000 (`github://`)", "completes",
         get("stats", lambda f: f"**{f['local']['seconds']} s** local ({f['local_records']}); "
                                f"**{f['github']['seconds']} s** github:// "
                                f"({f['github_records']})"), "—"),
    ]


def _load_note(r: dict[str, dict[str, Any]]) -> str:
    timed = [r[n] for n in ("drill_vs_papermill", "kernel_import") if n in r]
    if not timed:
        return ""
    info = timed[0].get("machine", {})
    loads = [f["load_before"] for f in timed] + [f["load_after"] for f in timed]
    return (f"Measured {info.get('date', '?')} on {info.get('cpus', '?')} cores (Python "
            f"{info.get('python', '?')}, {info.get('platform', '?')}); 1-minute load average "
            f"{min(loads)}–{max(loads)} during the timed runs (the cores are shared, so timings "
            "are noisy: the timed figures alternate what they compare and report medians)."
            + (" With the load above the core count, absolute times are inflated roughly by "
               "load ÷ cores; the ratios and the same-round baseline stay comparable."
               if max(loads) > float(info.get("cpus") or 1) else ""))


def render(r: dict[str, dict[str, Any]]) -> str:
    rows = "\n".join(f"| {a} | {b} | {c} | {d} |" for a, b, c, d in _summary_rows(r))
    parts = [HEADER, "| figure | target | measured | before |\n| --- | --- | --- | --- |\n" + rows,
             _load_note(r), _drill_section(r.get("drill_vs_papermill")),
             _import_section(r.get("kernel_import")), _github_section(r), PATH_B_INTRO,
             _path_b_table(r.get("path_b_overlap")), critical_path.section(r.get("critical_path")),
             HISTORY_SECTION, _stats_section(r.get("stats")), FIRST_RUN_SECTION]
    return "\n\n".join(p for p in parts if p).rstrip() + "\n"


HEADER = """\
# Benchmarks

Benchmarks live in `benchmarks/`, apart from the tests, and write their figures
to `benchmarks/results/<name>.json` (not committed: they are this machine's, and
every run rewrites them). This page is regenerated from those files:

```bash
.venv/bin/python -m benchmarks                          # every figure, then this page
.venv/bin/python -m benchmarks --baseline f8ce5d1       # timed figures also for a revision
.venv/bin/python -m benchmarks --only kernel_import --rounds 9
```

`--baseline REV` runs that revision's package and notebooks (from `git archive`,
through `PYTHONPATH`) in the same alternated rounds, so "before" and "after" see
the same load.

## The figures"""


def _drill_section(f: dict[str, Any] | None) -> str:
    text = """\
## A Path A drill against a bare papermill run

`benchmarks/drill_vs_papermill.py` runs `rollback-runbook drill path-a --env staging
--dry-run --speed 0` (a sandbox world, a kernel, Path A's 13 code cells up to the
plan, the archive) and `papermill two_cells.ipynb out.ipynb` (`x = 1`,
`print(x + 1)`), one after the other in each round, first round dropped.

Where the drill's time went (profiled at a load average below 2), and what changed:

- **2.3–2.7 s: `rfc3987_syntax`** compiling Lark grammars as it is imported, by
  jsonschema's optional IRI format checker, through nbformat
  (python-jsonschema/jsonschema#1428). No runbook validates an IRI and nbformat
  validates without format checkers, so `rollback_helpers.import_guards` marks that
  module unavailable before jsonschema loads; jsonschema then leaves the `iri`
  formats unchecked, as when the extra is not installed. Bare papermill still pays it.
- **0.45 s in the CLI and 0.33 s in the kernel: pandas**, for tables of ten rows.
  Steps build a `rollback_helpers.ui.table.Table` (aligned text, escaped HTML); a
  `Report` still shows a DataFrame given to it.
- **The kernel** (`rollback_helpers.run.headless`): IPC sockets in a private directory
  instead of TCP (no more "running over TCP without encryption" warning), this
  environment's `python3` without a kernel-spec search (which imported IPython into
  the CLI), no debugpy in a kernel nobody debugs, and no 0.2 s wait for IOPub
  silence after the start-up handshake. It starts early (`rollback_helpers.run.prestart`):
  once the flags and the configuration make sense, it imports ipykernel and the step
  module on the other core while the command line imports papermill and builds the world.
- **Saves**: papermill wrote the output notebook 53 times (before and after every
  cell, Markdown included); it is now written before each code cell and at the
  end, so an interrupted run leaves the same partial record."""
    if not f:
        return text
    columns = [("drill (s)", f["drill_seconds"], f["drill_median_seconds"]),
               ("papermill (s)", f["papermill_seconds"], f["papermill_median_seconds"])]
    if "baseline" in f:
        columns.append((f"drill at {f['baseline']} (s)", f["baseline_drill_seconds"],
                        f["baseline_drill_median_seconds"]))
    head = "| round | " + " | ".join(c[0] for c in columns) + " |\n|" + " --- |" * (len(columns) + 1)
    rows = [f"| {i + 1} | " + " | ".join(str(c[1][i]) for c in columns) + " |"
            for i in range(f["rounds"])]
    rows.append("| **median** | " + " | ".join(f"**{c[2]}**" for c in columns) + " |")
    before = (f" At {f['baseline']}, in the same rounds: {f['baseline_ratio']}."
              if "baseline" in f else "")
    return (text + "\n\n" + head + "\n" + "\n".join(rows) + f"\n\nRatio of the medians: "
            f"**{f['ratio']}** (target ≤ {f['target_ratio']}).{before} Load {f['load_before']} "
            f"before, {f['load_after']} after.")


def _import_section(f: dict[str, Any] | None) -> str:
    if not f:
        return ""
    rounds = ", ".join(f"{ms:.0f}" for ms in f["import_milliseconds"])
    return f"""\
## Importing the Path A step module in the kernel

`benchmarks/kernel_import.py` starts a fresh kernel per round (`{f['kernel_manager']}`,
as a headless run does; a baseline revision gets the kernel its own command line
started) and has it time `import rollback_helpers.runbook.path_a`, the first thing
the first step's cell does.

| kernels | each (ms) | median (ms) | target (ms) | pandas imported |
| --- | --- | --- | --- | --- |
| {f['rounds']} | {rounds} | **{f['median_milliseconds']:.0f}** | ≤ {f['target_milliseconds']:.0f} \
| {'yes' if f['pandas_imported'] else 'no'} |

{_import_baseline(f)}Load {f['load_before']} before, {f['load_after']} after.

A headless run no longer waits for this import: its kernel, started early
(`rollback_helpers.run.prestart`), has made it while the command line got ready. What
is measured here is what a kernel pays when it imports the module in its first cell:
a walkthrough's in JupyterLab, or a run with no kernel started early.

What changed: the import no longer loads what the first step does not use, and the
kernel no longer makes it walk the kernel's own objects.

- **nbformat and jsonschema** (with attrs, arrow, referencing, …): notebooks are read
  and written when a record is (`records.notebook_io` imports nbformat in those functions).
- **httpx's command line** (click, rich, pygments): `import httpx` imports
  `httpx._main` whenever they are installed; `rollback_helpers.import_guards` marks it
  unavailable first, and httpx falls back as when its `cli` extra is missing.
- **psutil**: loaded when another run on this machine holds the lock.
- **pydantic's plugin search**: the first model (the run's parameters) read every
  installed distribution's entry points looking for pydantic plugins; the kernel
  launcher sets `PYDANTIC_DISABLE_PLUGINS=__all__` unless the environment sets it.
- **The kernel's start-up objects**: a full garbage collection falls inside the
  import and walked every object of ipykernel, IPython and the rest (about a tenth
  of the import); the launcher freezes them (`gc.freeze()`) once the kernel is
  initialised, since they live as long as it.
- **idna's Unicode tables**: httpx imports `idna`, which loads `idna.idnadata` as it is
  imported, for host names that are all ASCII; `import_guards.defer_idna` puts a
  stand-in under the name that imports the real `idna` on first use (an IDN host).
- **The other paths' parameter models**: every path's pydantic model, and the union of
  them, were built as the module was imported; they are now built on first validation
  (`defer_build`), and a run validates against its own path's model only, so a Path A
  run never builds Path B's or verify-flip's.
- **The metrics evidence and the notifications** (the verdicts, the metrics client and
  the windows it reads; the webhooks): the plan step loads the first (`PathA.evidence`)
  and a live run's first notice the second, and the configuration's metrics settings
  have a module of their own (`domain.metrics_settings`). A headless run's kernel
  imports them while it waits for its launch (`PathSpec.steps`).

What remains, measured in a process holding the kernel's modules at a load below 1:
about a third is creating dataclasses (102 of them, 49 of about 140 ms: Python 3.11
compiles each generated method with its own `exec`, and a frozen class has five). 52
are the runbook's own (32 ms: flyctl's types, the record comment, the hints, the
clients' answers), 37 pydantic's and 13 annotated-types'. About a third more is
pydantic's other modules and the models the first step validates (its parameters and
the configuration); the rest is httpx's client with `http.client` and the runbook's
modules. The first step needs each of them; importing them later in the step would
move the milliseconds, not save them (deferring the configuration's schemas to its first
load took 4 ms off the import and added 7 ms to the load), so none is moved.
`tests/test_import_guards.py` fails if a module moved off comes back."""


def _import_baseline(f: dict[str, Any]) -> str:
    if "baseline" not in f:
        return ""
    each = ", ".join(f"{ms:.0f}" for ms in f["baseline_import_milliseconds"])
    pandas = "with pandas" if f["baseline_pandas_imported"] else "without pandas"
    return (f"At {f['baseline']}, in the same rounds: {each} ms, median "
            f"**{f['baseline_median_milliseconds']:.0f} ms** ({pandas}). ")


def _github_section(r: dict[str, dict[str, Any]]) -> str:
    resolve, watch = r.get("github_resolve"), r.get("github_watch")
    parts = ["## What Path A asks of GitHub\n\n`benchmarks/github_requests.py` counts, on "
             "the sandbox, from its call log and GitHub's `x-ratelimit-used` header."]
    if resolve:
        calls = ", ".join(f"`{c}` × {n}" for c, n in resolve["calls"].items())
        parts.append(f"- **Resolving a target among {resolve['staging_records']:,} staging "
                     f"records** (steps 1–3): **{resolve['requests']}** request(s) ({calls}); "
                     f"{resolve['records_examined']} records examined. Records are read a page "
                     "at a time, newest first, and resolution stops at the target.")
    if watch:
        parts.append(f"- **Watching a {watch['workflow_minutes']:.0f}-minute workflow run** "
                     f"(polled every {watch['poll_interval_seconds']:.0f} s): "
                     f"**{watch['rate_limit_points']}** rate-limit point(s) for {watch['polls']} "
                     f"polls, {watch['free_304_polls']} of them free `304 Not Modified` answers "
                     "to `If-None-Match` (points are spent only when the run changes state).")
    return "\n\n".join(parts)


PATH_B_INTRO = """\
## Path B: the readiness wait overlaps the URL reads

```bash
.venv/bin/python benchmarks/path_b_overlap.py --restore 300 --ssh 45 --speed 60
```

A `b-default` sandbox world whose restore becomes ready 300 s (virtual) after
the request and whose every `flyctl ssh console` takes 45 s. Path B reads the
app's `DATABASE_URL` and `DATABASE_URL_MIGRATION` between readiness polls, and
the polls keep a fixed rate from the restore's request (poll k at request +
k × `poll_interval`; `rollback_helpers.clock.PollSchedule`), so neither the reads
nor the writes made while waiting (the lease's note and renewals, the record
comment) delay the poll that sees `ready`:"""


def _path_b_table(f: dict[str, Any] | None) -> str:
    if not f:
        return "Not measured in the last run."
    speed, restore = f["speed"], f["restore_seconds"]
    waiting = restore / speed
    return f"""\
| | seconds |
| --- | --- |
| restore time alone | {restore:.0f} |
| restore + wait, URL reads overlapped (measured) | **{f['restore_and_wait_virtual_seconds']}** |
| restore, then the two reads after it (sequential) | {f['sequential_virtual_seconds']:.0f} |
| wall time of the step at speed {speed:.0f} ({restore:.0f} s → {waiting:.0f} s of real waiting) \
| {f['restore_and_wait_wall_seconds']} |

The wall time above the {waiting:.0f} s of scaled waiting is flyctl emulation, the
real PostgreSQL restore (a new server from a `pg_basebackup` copy) and polling."""


HISTORY_SECTION = """\
## `history` over 50 records

`benchmarks/records_history.py` (also alone: `python benchmarks/records_history.py`)
copies one real drill's record into a local folder and a loopback S3 store and
lists them as `rollback-runbook history --drills` does; the summary row above is
its median on the local folder, with the S3 figure beside it."""



def _stats_section(f: dict[str, Any] | None) -> str:
    text = """\
## `stats` over 10,000 records

`benchmarks/stats.py` (also alone: `python -m benchmarks.stats`) copies one real
drill's record 10,000 times into a local folder (half of them drills) and 1,000 times
into a `github://` folder of the sandbox's GitHub (each its metadata block whole, its
cells' display data dropped: the sandbox keeps its repository in one JSON file that
each request re-reads), then runs `rollback-runbook stats --format json` in-process.
The store is read 200 records at a time, each reduced to a few facts at once."""
    if not f:
        return text
    rows = [(name, f[f"{key}_records"], f[f"{key}_record_bytes"], f[key]["seconds"],
             f[key]["peak_rss_mib"]) for name, key in (("local folder", "local"),
                                                       ("github://", "github"))]
    table = "| store | records | bytes each | seconds | peak RSS (MiB) |\n| --- | --- | --- | --- | --- |\n"
    table += "\n".join(f"| {a} | {b} | {c} | {d} | {e} |" for a, b, c, d, e in rows)
    return (f"{text}\n\n{table}\n\nThe github:// run made {f['github_store_requests']} requests "
            "to the repository folder (one listing per folder, one read per record). Nearly all "
            "of its time is the sandbox's: it re-reads and rewrites its whole state file (here "
            f"about {f['github_records'] * f['github_record_bytes'] // 2**20} MiB) on every "
            "request. Against GitHub it is those requests at GitHub's latency, within the "
            "5,000 requests an hour a token may make.")


if __name__ == "__main__":
    raise SystemExit(main())


FIRST_RUN_SECTION = """\
## The first drill on a fresh clone

Measured by hand (it needs a fresh virtual environment, so `python -m benchmarks` does not
repeat it): `ROLLBACK_VENV=/tmp/x ./rollback-runbook drill path-a --env staging` on a fresh
venv installs the runtime dependencies only (`scripts/ensure-venv`, one line a package as pip
collects it); `./run-tests` adds the test extras (pytest, Playwright, mypy, moto, …).

| | target | measured |
| --- | --- | --- |
| the drill's venv on disk (`du -sh`), runtime dependencies only | < 600 MB | **580 MB** (131 packages) |
| the same with the test extras (what `./run-tests` installs) | — | 1.2 GB |
| first drill, set-up and drill together, pip's cache warm | — | 2 min 0 s wall |

Measured 2026-12-04 on 2 shared cores, Python 3.11.7; a cold pip cache adds the download."""
