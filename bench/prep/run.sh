#!/usr/bin/env bash
# Prep benchmark: `bluewhale prep` (DLRM Criteo recipe) against DuckDB (Node) and pandas doing the same
# work on the same file in the same run, plus the machine's raw read speed for that file.
# See bench/prep/README.md. Builds and installs nothing: `make bench` does that first.
#
#   bash bench/prep/run.sh
#
# Environment (all optional):
#   BENCH_SIZES="1000000 5000000"  row counts to run
#   BENCH_THREADS=2                threads for bluewhale and DuckDB (pandas is single-threaded)
#   BENCH_MIN_COUNT                categorify min_count for the peers; default: the recipe's (2)
#   BENCH_SKIP_PANDAS_5M=1         skip pandas on sizes >= 5M rows
#   BENCH_SKIP="duckdb pandas"     tools to skip (bluewhale, duckdb, pandas)
#   BENCH_TIMEOUT=1800             seconds before one tool run is killed
#   BENCH_REPS=1                   runs per tool and size, taking turns between the tools; the table
#                                  shows the median run (by wall time)
#   BENCH_OUT=bench/out            data cache, outputs and the report (bench/out/prep_bench.md)
#   BLUEWHALE=build/bluewhale      the binary under test
#   BENCH_PROBE=build/prep_core_probe  machine-state probe run before each timed run (make bench builds it)
#   DUCKDB_COMPRESSION=uncompressed  Parquet codec for DuckDB (uncompressed or snappy)
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$ROOT"

SIZES="${BENCH_SIZES:-1000000 5000000}"
THREADS="${BENCH_THREADS:-2}"
OUT="${BENCH_OUT:-$ROOT/bench/out}"
BW="${BLUEWHALE:-$ROOT/build/bluewhale}"
RECIPE="$ROOT/recipes/dlrm-criteo.yaml"
TIMEOUT="${BENCH_TIMEOUT:-1800}"
REPS="${BENCH_REPS:-1}"
SKIP=" ${BENCH_SKIP:-} "
PY=/usr/bin/python3          # Debian's python3 with python3-pandas, not a pyenv/venv one on PATH
TIME=/usr/bin/time           # GNU time (Debian package `time`) for peak RSS
SEED=1

say() { printf '%s\n' "$*"; }
warn() { printf 'prep-bench: %s\n' "$*" >&2; }
die() { warn "$*"; exit 1; }

[[ -x "$TIME" ]] || die "$TIME not found: install the Debian package 'time' (make bench does)"
[[ -x "$PY" ]] || die "$PY not found: install the Debian package 'python3' (make bench does)"
[[ "$THREADS" =~ ^[1-9][0-9]*$ ]] || die "BENCH_THREADS must be a positive integer, got '$THREADS'"
for n in $SIZES; do [[ "$n" =~ ^[1-9][0-9]*$ ]] || die "BENCH_SIZES must hold positive integers, got '$n'"; done

# min_count: one value for all three tools. bluewhale takes it from the recipe, so the peers do too.
recipe_min_count=""
if [[ -f "$RECIPE" ]]; then
  recipe_min_count="$(sed -n 's/.*op: *categorify.*min_count: *\([0-9][0-9]*\).*/\1/p' "$RECIPE" | head -n1)"
fi
MIN_COUNT="${BENCH_MIN_COUNT:-${recipe_min_count:-2}}"
[[ "$MIN_COUNT" =~ ^[1-9][0-9]*$ ]] || die "BENCH_MIN_COUNT must be a positive integer, got '$MIN_COUNT'"
if [[ -n "$recipe_min_count" && "$recipe_min_count" != "$MIN_COUNT" ]]; then
  die "BENCH_MIN_COUNT=$MIN_COUNT differs from min_count: $recipe_min_count in $RECIPE; the tools would not do the same work"
fi
export BENCH_MIN_COUNT="$MIN_COUNT"

# A subcommand counts as present when its --help succeeds and names a flag it must have (an older
# binary or a stub prints something else).
bw_has() {
  [[ -x "$BW" ]] || return 1
  local help
  help="$("$BW" "$1" --help 2>&1)" || return 1
  [[ "$help" == *"$2"* ]]
}

have_bw_prep=0; have_bw_gen=0
if bw_has prep --recipe && [[ -f "$RECIPE" ]]; then have_bw_prep=1; fi
if bw_has gen --rows; then have_bw_gen=1; fi
skip_tool() { [[ "$SKIP" == *" $1 "* ]]; }

have_duckdb=1; duckdb_note=""
if ! command -v node >/dev/null 2>&1; then have_duckdb=0; duckdb_note="node not found"
elif [[ ! -d "$ROOT/bench/node_modules/@duckdb/node-api" ]]; then
  have_duckdb=0; duckdb_note="@duckdb/node-api not installed (npm install --prefix bench)"
fi
have_pandas=1; pandas_note=""
if ! "$PY" -c 'import pandas, numpy' 2>/dev/null; then
  have_pandas=0; pandas_note="pandas/numpy not importable by $PY (apt-get install python3-pandas)"
fi

mkdir -p "$OUT"
# The peers fit their dictionaries on every row and write one table, so bluewhale runs the same recipe with
# its train/valid/test split turned off: all three tools then do the same work and write the same rows.
BENCH_RECIPE="$OUT/dlrm-criteo-nosplit.yaml"
if [[ -f "$RECIPE" ]]; then
  sed 's/^\(  by: *\)ratio/\1none/' "$RECIPE" > "$BENCH_RECIPE"
  grep -q '^  by: *none' "$BENCH_RECIPE" || die "could not turn off the split in $RECIPE"
fi
label_of() {
  local n="$1"
  if ((n % 1000000 == 0)); then echo "$((n / 1000000))m"
  elif ((n % 1000 == 0)); then echo "$((n / 1000))k"
  else echo "$n"; fi
}

# Input data, cached under $OUT. `bluewhale gen criteo` when present; otherwise the real Criteo sample
# repeated, which is only a stand-in: every value then occurs >= 75 times, so nothing is rare and the
# dictionaries are tiny compared with real logs or gen's output.
SAMPLE="$ROOT/../shared/data/criteo/criteo_dac_13k.tsv"
data_file() {
  local n="$1" label file tmp
  label="$(label_of "$n")"
  if ((have_bw_gen)); then
    file="$OUT/criteo_gen_s${SEED}_${label}.tsv"
    if [[ ! -s "$file" ]]; then
      say "generating $file ($n rows, bluewhale gen criteo --seed $SEED)" >&2
      tmp="$file.tmp.$$"
      "$BW" gen criteo --rows "$n" --out "$tmp" --seed "$SEED" >&2 || { rm -f "$tmp"; return 1; }
      mv "$tmp" "$file"
    fi
  else
    file="$OUT/criteo_rep_${label}.tsv"
    if [[ ! -s "$file" ]]; then
      [[ -f "$SAMPLE" ]] || { warn "no 'bluewhale gen' and no sample at $SAMPLE: cannot make data"; return 1; }
      say "bluewhale gen not available: making $file by repeating $SAMPLE (stand-in data)" >&2
      tmp="$file.tmp.$$"
      local per reps
      per="$(wc -l < "$SAMPLE")"
      reps=$(((n + per - 1) / per))
      # head closes the pipe early on purpose; the loop's SIGPIPE is expected.
      { for ((i = 0; i < reps; i++)); do cat "$SAMPLE"; done; } | head -n "$n" > "$tmp" || true
      [[ "$(wc -l < "$tmp")" -eq "$n" ]] || { rm -f "$tmp"; warn "short write making $file"; return 1; }
      mv "$tmp" "$file"
    fi
  fi
  echo "$file"
}

# Repetitions take turns: round k runs every tool once before round k + 1, so that each tool's runs
# are spread over the whole measurement and meet the machine's quick and slow spells alike (the shared
# VMs this runs on change speed for minutes at a time; see prep_core_probe). Per tool NAME and size DIR:
#   add_tool NAME OUTPUT CMD...  queues the tool; OUTPUT (its result) is removed before each run, outside
#                                the clock
#   run_round K DIR              runs repetition K of every queued tool that has not failed, under GNU
#                                time: DIR/NAME.K.{stdout,stderr,time,rc[,report.json,c2c]}
#   finish_tools DIR             keeps each tool's median run (by wall time) as DIR/NAME.*, every run's
#                                wall time in DIR/NAME.reps and core-to-core round trip in DIR/NAME.c2cs.
#                                A failed run is kept instead (and ended that tool's repetitions).
QUEUED=()
add_tool() {
  local name="$1" output="$2"; shift 2
  QUEUED+=("$name")
  declare -g "OUTPUT_$name=$output"
  declare -g -a "CMD_$name"
  local -n cmd="CMD_$name"
  cmd=("$@")
  say "  $name: $*"
}

# Core-to-core round trip in ns right before a run (prep_core_probe, built by make bench), or '-'.
PROBE="${BENCH_PROBE:-$ROOT/build/prep_core_probe}"
probe() { if [[ -x "$PROBE" ]]; then "$PROBE" 2>/dev/null || echo -; else echo -; fi; }

run_round() {
  local k="$1" dir="$2" name rc
  for name in "${QUEUED[@]}"; do
    [[ -f "$dir/$name.failed" ]] && continue
    local -n cmd="CMD_$name" output="OUTPUT_$name"
    rm -rf "$output"
    sync
    # Every run starts with its input in the page cache, as the read limit does: a file left unread while
    # another tool ran (a minute at 5M rows) is partly reclaimed on the VMs this runs on (kdamond), and
    # whichever tool came next paid for reading it from disk.
    cat "$(cat "$dir/input")" > /dev/null
    probe > "$dir/$name.$k.c2c"
    rc=0
    timeout "$TIMEOUT" "$TIME" -v -o "$dir/$name.$k.time" "${cmd[@]}" > "$dir/$name.$k.stdout" 2> "$dir/$name.$k.stderr" || rc=$?
    echo "$rc" > "$dir/$name.$k.rc"
    # A report the tool wrote itself (bluewhale's --report DIR/NAME.report.json) belongs to this run too.
    if [[ -f "$dir/$name.report.json" ]]; then mv "$dir/$name.report.json" "$dir/$name.$k.report.json"; fi
    if ((rc != 0)); then
      echo "0 $k" >> "$dir/$name.walls"
      echo "$k" > "$dir/$name.failed"
      continue
    fi
    awk -F': ' -v k="$k" '/Elapsed \(wall clock\)/ { n = split($2, p, ":"); s = 0; for (i = 1; i <= n; i++) s = s * 60 + p[i]; print s, k }' \
      "$dir/$name.$k.time" >> "$dir/$name.walls"
  done
}

finish_tools() {
  local dir="$1" name pick ext rc
  for name in "${QUEUED[@]}"; do
    [[ -f "$dir/$name.walls" ]] || continue
    if [[ -f "$dir/$name.failed" ]]; then
      pick="$(cat "$dir/$name.failed")"
    else
      pick="$(sort -n "$dir/$name.walls" | awk '{ a[NR] = $2 } END { print a[int((NR + 1) / 2)] }')"
    fi
    for ext in time stdout stderr rc report.json; do
      if [[ -f "$dir/$name.$pick.$ext" ]]; then cp "$dir/$name.$pick.$ext" "$dir/$name.$ext"; fi
    done
    awk '{ print $1 }' "$dir/$name.walls" > "$dir/$name.reps"
    awk '{ print $2 }' "$dir/$name.walls" | while read -r k; do cat "$dir/$name.$k.c2c"; done > "$dir/$name.c2cs"
    rc="$(cat "$dir/$name.rc")"
    if ((rc != 0)); then
      if ((rc == 124)); then warn "$name timed out after ${TIMEOUT}s"; else warn "$name failed (exit $rc):"; fi
      tail -n 20 "$dir/$name.stderr" | sed 's/^/    /' >&2
    fi
  done
  QUEUED=()
}

skipped() { printf '%s\n' "$3" > "$1/$2.skipped"; say "  $2: skipped: $3"; }

# Page-cache read speed of FILE: the best of 3 warm `cat FILE > /dev/null`, after one warming pass.
read_limit() {
  local file="$1" dir="$2" best="" t0 t1 s
  cat "$file" > /dev/null
  for _ in 1 2 3; do
    t0="$(date +%s.%N)"; cat "$file" > /dev/null; t1="$(date +%s.%N)"
    s="$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.4f", b - a }')"
    if [[ -z "$best" ]] || awk -v a="$s" -v b="$best" 'BEGIN { exit !(a < b) }'; then best="$s"; fi
  done
  echo "$best" > "$dir/read_limit.seconds"
  say "  read limit: cat (warm) ${best}s"
}

LOAD_BEFORE="$(cut -d' ' -f1-3 /proc/loadavg 2>/dev/null || echo '?')"
RUNS="$OUT/runs"
rm -rf "$RUNS"
mkdir -p "$RUNS"
data_kind="bluewhale gen criteo --seed $SEED"
((have_bw_gen)) || data_kind="STAND-IN: criteo_dac_13k.tsv repeated (bluewhale gen not available)"

((have_bw_prep)) || warn "bluewhale prep not available in $BW (no 'prep --help' naming --recipe, or no $RECIPE): skipping bluewhale"

for n in $SIZES; do
  label="$(label_of "$n")"
  dir="$RUNS/$label"
  mkdir -p "$dir"
  say ""
  say "== $n rows =="
  if ! file="$(data_file "$n")"; then
    warn "no data for $n rows; skipping this size"
    echo "no data" > "$dir/nodata"
    continue
  fi
  echo "$file" > "$dir/input"
  read_limit "$file" "$dir"
  # Every tool writes into a fresh place: deleting the previous run's output (hundreds of MB, slow on
  # file systems that discard freed blocks) is not part of anyone's work, so it happens before the clocks.
  rm -rf "$OUT/bluewhale_$label" "$OUT/duckdb_$label.parquet" "$OUT/pandas_$label"
  sync

  if skip_tool bluewhale; then skipped "$dir" bluewhale "BENCH_SKIP"
  elif ((!have_bw_prep)); then skipped "$dir" bluewhale "bluewhale prep not built yet"
  else
    add_tool bluewhale "$OUT/bluewhale_$label" "$BW" prep --recipe "$BENCH_RECIPE" --input "$file" --out "$OUT/bluewhale_$label" \
      --threads "$THREADS" --overwrite --quiet --report "$dir/bluewhale.report.json"
  fi

  if skip_tool duckdb; then skipped "$dir" duckdb "BENCH_SKIP"
  elif ((!have_duckdb)); then skipped "$dir" duckdb "$duckdb_note"
  else
    add_tool duckdb "$OUT/duckdb_$label.parquet" node "$ROOT/bench/prep/duckdb_prep.mjs" --input "$file" --out "$OUT/duckdb_$label.parquet" \
      --threads "$THREADS" --min-count "$MIN_COUNT" --compression "${DUCKDB_COMPRESSION:-uncompressed}"
  fi

  if skip_tool pandas; then skipped "$dir" pandas "BENCH_SKIP"
  elif ((!have_pandas)); then skipped "$dir" pandas "$pandas_note"
  elif [[ "${BENCH_SKIP_PANDAS_5M:-0}" == 1 ]] && ((n >= 5000000)); then skipped "$dir" pandas "BENCH_SKIP_PANDAS_5M=1"
  else
    add_tool pandas "$OUT/pandas_$label" "$PY" "$ROOT/bench/prep/pandas_prep.py" --input "$file" --out "$OUT/pandas_$label" \
      --min-count "$MIN_COUNT"
  fi

  for ((k = 1; k <= REPS; k++)); do run_round "$k" "$dir"; done
  finish_tools "$dir"

  # Agreement: every output reduced to the same per-column checksums (the scripts' --summary;
  # pandas_prep.py also reads bluewhale's dataset format, without the order-sensitive sums).
  if [[ -f "$dir/bluewhale.rc" && "$(cat "$dir/bluewhale.rc")" == 0 ]]; then
    if (($have_pandas)); then
      "$PY" "$ROOT/bench/prep/pandas_prep.py" --summary "$OUT/bluewhale_$label" > "$dir/bluewhale.summary.json" \
        2> "$dir/bluewhale.summary.err" || warn "cannot read bluewhale's dataset: $(tail -n 3 "$dir/bluewhale.summary.err")"
    fi
  fi
  if [[ -f "$dir/duckdb.rc" && "$(cat "$dir/duckdb.rc")" == 0 ]]; then
    node "$ROOT/bench/prep/duckdb_prep.mjs" --summary "$OUT/duckdb_$label.parquet" > "$dir/duckdb.summary.json" \
      2> "$dir/duckdb.summary.err" || warn "duckdb summary failed: $(tail -n 3 "$dir/duckdb.summary.err")"
  fi
  if [[ -f "$dir/pandas.rc" && "$(cat "$dir/pandas.rc")" == 0 ]]; then
    "$PY" "$ROOT/bench/prep/pandas_prep.py" --summary "$OUT/pandas_$label" > "$dir/pandas.summary.json" \
      2> "$dir/pandas.summary.err" || warn "pandas summary failed: $(tail -n 3 "$dir/pandas.summary.err")"
  fi
done

# Table and checks, from the files the runs left behind.
export RUNS SIZES THREADS MIN_COUNT data_kind BW LOAD_BEFORE
"$PY" - "$OUT/prep_bench.md" <<'PYEOF'
import json, math, os, platform, re, subprocess, sys, time

runs, report_path = os.environ["RUNS"], sys.argv[1]
tools = ["bluewhale", "duckdb", "pandas"]

def read(path, default=None):
    try:
        with open(path) as f:
            return f.read()
    except OSError:
        return default

def last_json(text):
    for line in reversed((text or "").splitlines()):
        line = line.strip()
        if line.startswith("{"):
            try:
                return json.loads(line)
            except ValueError:
                pass
    return None

def gnu_time(path):
    text = read(path, "")
    rss = re.search(r"Maximum resident set size \(kbytes\): (\d+)", text)
    wall = re.search(r"Elapsed \(wall clock\) time \(h:mm:ss or m:ss\): ([\d:.]+)", text)
    cpu = re.search(r"Percent of CPU this job got: (\d+)%", text)
    secs = None
    if wall:
        secs = 0.0
        for part in wall.group(1).split(":"):
            secs = secs * 60 + float(part)
    return secs, (int(rss.group(1)) / 1024 if rss else None), (int(cpu.group(1)) if cpu else None)

def cpu_name():
    for line in (read("/proc/cpuinfo", "") or "").splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.processor() or "?"

def fmt(x, digits=0):
    if x is None:
        return "-"
    return f"{x:,.{digits}f}"

lines, notes, checks = [], [], []
git = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout.strip()
lines += ["# Prep benchmark: bluewhale vs DuckDB vs pandas", "",
          f"{time.strftime('%Y-%m-%d %H:%M')}, git {git or '?'}, {cpu_name()}, {os.cpu_count()} cores; "
          f"threads {os.environ['THREADS']} (pandas 1), min_count {os.environ['MIN_COUNT']}.",
          f"Data: {os.environ['data_kind']}.",
          "Seconds are process wall clock (start-up included) from GNU time, as is peak RSS; "
          "'bw x' is bluewhale's rows/s over the tool's. CPU % is GNU time's (200 % = both cores busy); "
          "much less than the tool's threads x 100 % means other work on the machine slowed it. "
          "Every run starts with its input in the page cache (read once, untimed, as the read limit does). "
          "Repetitions take turns between the tools; 'core-to-core' is the round trip of a cache line between "
          "the first two CPUs just before each run (prep_core_probe): on shared VMs it jumps between ~55 ns "
          "and ~350 ns as the hypervisor moves the vCPUs, and runs that keep both busy are slower in the "
          "far state.",
          f"Load average before the runs: {os.environ.get('LOAD_BEFORE', '?')}.", ""]
lines += ["| rows | tool | seconds | rows/s | input MB/s | peak RSS MiB | CPU % | bw x | note |",
          "|---:|---|---:|---:|---:|---:|---:|---:|---|"]

for n in os.environ["SIZES"].split():
    n = int(n)
    label = f"{n // 1000000}m" if n % 1000000 == 0 else (f"{n // 1000}k" if n % 1000 == 0 else str(n))
    d = os.path.join(runs, label)
    if not os.path.isdir(d) or os.path.exists(os.path.join(d, "nodata")):
        lines.append(f"| {n:,} | (no data) | | | | | | | |")
        continue
    path = read(os.path.join(d, "input"), "").strip()
    size = os.path.getsize(path) if path and os.path.exists(path) else None
    res = {}
    for t in tools:
        skipped = read(os.path.join(d, f"{t}.skipped"))
        if skipped is not None:
            res[t] = {"note": "skipped: " + skipped.strip()}
            continue
        rc = read(os.path.join(d, f"{t}.rc"))
        if rc is None:
            continue
        secs, rss, cpu = gnu_time(os.path.join(d, f"{t}.time"))
        if t == "bluewhale":
            try:  # the --report file is one pretty-printed JSON object
                j = json.loads(read(os.path.join(d, "bluewhale.report.json"), "") or "null")
            except ValueError:
                j = None
        else:
            j = last_json(read(os.path.join(d, f"{t}.stdout")))
        rc = rc.strip()
        r = {"rc": int(rc), "seconds": secs, "rss": rss, "cpu": cpu, "json": j or {}}
        if int(rc) != 0:
            err = [l.strip() for l in (read(os.path.join(d, f"{t}.stderr"), "") or "").splitlines() if l.strip()]
            # The line that says what went wrong: the tool's own "name: message" or an error line, else the last.
            said = [l for l in err if re.match(r"^(duckdb_prep|pandas_prep|bluewhale)\b.*:", l) or "rror" in l]
            msg = (said or err or ["no message (see stderr under " + d + ")"])[-1 if not said else 0]
            r["note"] = f"FAILED (exit {rc.strip()}): " + msg.replace("|", "/")[:140]
        else:
            rows = (j or {}).get("rows")
            r["rows"] = rows
            if rows is None:
                r["note"] = "no row count in its JSON"
            elif int(rows) != n:
                r["note"] = f"wrote {rows} rows, expected {n}"
            if secs:
                r["rps"] = (rows if rows is not None else n) / secs
            inner = (j or {}).get("seconds")
            if inner is not None:
                r.setdefault("note", f"own timer {float(inner):.2f}s")
            # bluewhale's choices for the median run: how its fit was shared, how its shards were written.
            how = []
            if (j or {}).get("fit_sharing"):
                how.append(f"fit by {j['fit_sharing']}")
            if (j or {}).get("shard_writes"):
                cost = j.get("page_cache_us_per_mib")
                how.append(f"shards via {j['shard_writes']}" + (f" ({float(cost):.0f} us/MiB)" if cost is not None else ""))
            if how and "note" in r:
                r["note"] += "; " + ", ".join(how)
            reps = [float(x) for x in (read(os.path.join(d, f"{t}.reps"), "") or "").split()]
            c2cs = (read(os.path.join(d, f"{t}.c2cs"), "") or "").split()
            probed = ""
            if c2cs and any(c != "-" for c in c2cs):
                probed = f"; core-to-core {' / '.join(c2cs)} ns"
            if len(reps) > 1:
                note = f"median of {len(reps)} runs ({' / '.join(f'{x:.2f}' for x in reps)} s{probed})"
                r["note"] = note + ("; " + r["note"] if r.get("note") else "")
            elif probed:
                r["note"] = probed[2:] + ("; " + r["note"] if r.get("note") else "")
        res[t] = r
    bw_rps = res.get("bluewhale", {}).get("rps")
    for t in tools:
        r = res.get(t)
        if r is None:
            continue
        if "rps" not in r:
            lines.append(f"| {n:,} | {t} | | | | | | | {r.get('note', '')} |")
            continue
        mbs = size / 1e6 / r["seconds"] if size and r["seconds"] else None
        ratio = "1.00" if t == "bluewhale" else (f"{bw_rps / r['rps']:.2f}" if bw_rps else "-")
        lines.append(f"| {n:,} | {t} | {r['seconds']:.2f} | {fmt(r['rps'])} | {fmt(mbs, 1)} | "
                     f"{fmt(r['rss'])} | {fmt(r['cpu'])} | {ratio} | {r.get('note', '')} |")
    rl = read(os.path.join(d, "read_limit.seconds"))
    if rl and size:
        s = float(rl)
        frac = f"bluewhale at {bw_rps / (n / s):.1%} of it" if bw_rps else ""
        lines.append(f"| {n:,} | read limit (cat, warm) | {s:.2f} | {fmt(n / s)} | {fmt(size / 1e6 / s, 1)} | - | - | - | {frac} |")

    # Agreement checks.
    sums = {t: last_json(read(os.path.join(d, f"{t}.summary.json"))) for t in ("duckdb", "pandas")}
    if sums["duckdb"] and sums["pandas"]:
        a, b = sums["duckdb"], sums["pandas"]
        bad = [k for k in sorted(set(a) | set(b))
               if k not in a or k not in b or not math.isclose(a[k], b[k], rel_tol=1e-6, abs_tol=1e-3)]
        if bad:
            checks.append(f"- {n:,} rows: DuckDB vs pandas: **{len(bad)} of {len(a)} checksums differ**: "
                          + ", ".join(f"{k} {a.get(k)} vs {b.get(k)}" for k in bad[:8]))
        else:
            c = "C1"
            checks.append(f"- {n:,} rows: DuckDB vs pandas: all {len(a)} checksums agree (rows {a['rows']:,}; "
                          f"{c}: {a[c + '_distinct']:,} distinct ids, max id {a[c + '_max']:,}, "
                          f"id 2 on {a[c + '_n2']:,} rows, rare id 1 on {a[c + '_n1']:,}, missing id 0 on "
                          f"{a[c + '_n0']:,}; order-sensitive sums included).")
    else:
        missing = [t for t, s in sums.items() if not s]
        checks.append(f"- {n:,} rows: DuckDB vs pandas: not compared ({', '.join(missing)} output missing).")
    bw = res.get("bluewhale", {})
    bws = last_json(read(os.path.join(d, "bluewhale.summary.json")))
    ref_name = "duckdb" if sums["duckdb"] else ("pandas" if sums["pandas"] else None)
    if bws and ref_name:
        ref = sums[ref_name]
        keys = sorted(set(bws) & set(ref))
        bad = [k for k in keys if not math.isclose(bws[k], ref[k], rel_tol=1e-5, abs_tol=1e-3)]
        if bad:
            checks.append(f"- {n:,} rows: bluewhale vs {ref_name}: **{len(bad)} of {len(keys)} checksums differ**: "
                          + ", ".join(f"{k} {bws.get(k)} vs {ref.get(k)}" for k in bad[:8]))
        elif "label_wsum" in keys:
            checks.append(f"- {n:,} rows: bluewhale vs {ref_name}: all {len(keys)} checksums agree, order-sensitive "
                          f"sums included (the same values and ids row by row).")
        else:
            checks.append(f"- {n:,} rows: bluewhale vs {ref_name}: all {len(keys)} order-free checksums agree "
                          f"(rows, per-column sums, distinct ids, id 0/1/2 counts; row order not compared: "
                          f"the recipe's split scatters rows).")
    elif bw.get("rows") is not None:
        others = {t: res[t].get("rows") for t in ("duckdb", "pandas") if res.get(t, {}).get("rows") is not None}
        same = all(int(v) == int(bw["rows"]) for v in others.values())
        why = "its dataset could not be read (see bluewhale.summary.err)" if not bws else "no peer output"
        checks.append(f"- {n:,} rows: bluewhale row count {int(bw['rows']):,} "
                      + ("matches " + ", ".join(others) if others and same else
                         ("DIFFERS from " + str(others) if others else "(no peer to match)"))
                      + f"; ids not compared: {why}.")

lines += ["", "Checks:"] + (checks or ["- none ran"])
text = "\n".join(lines) + "\n"
print()
print(text, end="")
os.makedirs(os.path.dirname(report_path), exist_ok=True)
tmp = report_path + f".tmp.{os.getpid()}"
with open(tmp, "w") as f:
    f.write(text)
os.replace(tmp, report_path)
print(f"\nwritten to {report_path}")
PYEOF
