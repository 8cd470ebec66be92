// DuckDB peer for the DLRM Criteo prep benchmark (see bench/prep/README.md).
//
//   node bench/prep/duckdb_prep.mjs --input FILE.tsv --out OUT.parquet [--min-count 2] [--threads 2]
//                                   [--compression snappy|uncompressed]
//   node bench/prep/duckdb_prep.mjs --summary OUT.parquet
//
// Prep mode prints one JSON line: {"tool":"duckdb","rows":N,"seconds":S,"rows_per_s":R,...}.
// Summary mode prints one JSON line of per-column checksums that run.sh compares with pandas_prep.py.
//
// The work is the same as `bluewhale prep --recipe recipes/dlrm-criteo.yaml`:
//   dense I1..I13: missing -> 0, negative -> 0, ln(1 + x), float32
//   categorical C1..C26: ids by descending count (ties by value) starting at 2 for values with
//   count >= min_count, 1 for rarer values, 0 for missing; int32
//   label: float32
// Rows keep the input order (checked by the order-sensitive checksum in --summary).

import { DuckDBInstance } from '@duckdb/node-api';
import fs from 'node:fs';
import path from 'node:path';

const kDense = Array.from({ length: 13 }, (_, i) => `I${i + 1}`);
const kCat = Array.from({ length: 26 }, (_, i) => `C${i + 1}`);

function usage(msg) {
  if (msg) console.error(`duckdb_prep: ${msg}`);
  console.error('usage: duckdb_prep.mjs --input FILE.tsv --out OUT.parquet [--min-count N] [--threads N]\n' +
                '                        [--compression snappy|uncompressed]\n' +
                '       duckdb_prep.mjs --summary OUT.parquet');
  process.exit(2);
}

function parseArgs(argv) {
  const opts = {
    minCount: Number(process.env.BENCH_MIN_COUNT ?? 2),
    threads: Number(process.env.BENCH_THREADS ?? 2),
    compression: process.env.DUCKDB_COMPRESSION ?? 'uncompressed',
  };
  for (let i = 0; i < argv.length; i++) {
    const key = argv[i];
    const val = argv[i + 1];
    if (val === undefined) usage(`${key} needs a value`);
    switch (key) {
      case '--input': opts.input = val; break;
      case '--out': opts.out = val; break;
      case '--summary': opts.summary = val; break;
      case '--min-count': opts.minCount = Number(val); break;
      case '--threads': opts.threads = Number(val); break;
      case '--compression': opts.compression = val; break;
      default: usage(`unknown option '${key}'`);
    }
    i++;
  }
  if (!Number.isInteger(opts.minCount) || opts.minCount < 1) usage(`--min-count must be an integer >= 1, got '${opts.minCount}'`);
  if (!Number.isInteger(opts.threads) || opts.threads < 1) usage(`--threads must be an integer >= 1, got '${opts.threads}'`);
  if (!['uncompressed', 'snappy'].includes(opts.compression)) usage(`--compression must be uncompressed or snappy, got '${opts.compression}'`);
  if (!opts.summary && (!opts.input || !opts.out)) usage('--input and --out are required');
  return opts;
}

// SQL string literal.
const lit = (s) => `'${String(s).replaceAll("'", "''")}'`;

function readCsvSql(file) {
  const cols = [`'label': 'INTEGER'`, ...kDense.map((c) => `'${c}': 'BIGINT'`), ...kCat.map((c) => `'${c}': 'VARCHAR'`)];
  // Explicit schema, no sniffing: the same contract every tool gets. Empty field = NULL for all types.
  return `read_csv(${lit(file)}, delim='\\t', header=false, quote='', escape='', nullstr='',
                   auto_detect=false, columns={${cols.join(', ')}})`;
}

async function prep(opts) {
  if (!fs.existsSync(opts.input)) throw new Error(`input file '${opts.input}' does not exist`);
  const t0 = performance.now();
  const instance = await DuckDBInstance.create(':memory:', { threads: String(opts.threads) });
  const con = await instance.connect();
  await con.run(`SET threads=${opts.threads}`);
  await con.run('SET preserve_insertion_order=true');
  const times = {};
  let t = performance.now();

  // Parse the log once into a temporary table (DuckDB's usual way; it spills past the memory limit).
  // Re-reading the CSV per column instead was 3.5x slower at 1M rows.
  await con.run(`CREATE TEMP TABLE raw AS SELECT * FROM ${readCsvSql(opts.input)}`);
  const src = 'raw';
  times.read = (performance.now() - t) / 1000;
  t = performance.now();

  // One frequency table per column, kept values only (count >= min_count): id = rank by (count DESC,
  // value) + 1, so the most frequent value gets id 2; rare values find no row and map to 1 below.
  for (const c of kCat) {
    await con.run(`CREATE TEMP TABLE dict_${c} AS
      SELECT v, (ROW_NUMBER() OVER (ORDER BY n DESC, v) + 1)::INTEGER AS id
      FROM (SELECT ${c} AS v, count(*) AS n FROM ${src} WHERE ${c} IS NOT NULL GROUP BY ${c})
      WHERE n >= ${opts.minCount}`);
  }
  times.dicts = (performance.now() - t) / 1000;
  t = performance.now();

  const dense = kDense.map((c) => `LN(1 + GREATEST(COALESCE(r.${c}, 0), 0))::FLOAT AS ${c}`);
  const cat = kCat.map((c) => `(CASE WHEN r.${c} IS NULL THEN 0 ELSE COALESCE(d_${c}.id, 1) END)::INTEGER AS ${c}`);
  // DuckDB's hash joins do not keep the input order (a LEFT JOIN emits unmatched probe rows after the
  // matched ones), so the output is sorted back by the raw table's rowid: a dataset keeps the log's order.
  const joins = kCat.map((c) => `LEFT JOIN dict_${c} d_${c} ON r.${c} = d_${c}.v`);
  fs.rmSync(opts.out, { force: true, recursive: true });
  fs.mkdirSync(path.dirname(path.resolve(opts.out)), { recursive: true });
  const tmp = `${opts.out}.partial-${process.pid}`;
  await con.run(`COPY (SELECT r.label::FLOAT AS label, ${dense.join(', ')}, ${cat.join(', ')}
                       FROM ${src} r ${joins.join(' ')} ORDER BY r.rowid)
                 TO ${lit(tmp)} (FORMAT parquet, COMPRESSION ${opts.compression})`);
  fs.renameSync(tmp, opts.out);
  times.map_write = (performance.now() - t) / 1000;

  const rows = Number((await con.runAndReadAll(`SELECT count(*) FROM read_parquet(${lit(opts.out)})`)).getRows()[0][0]);
  const seconds = (performance.now() - t0) / 1000;
  const bytes = fs.statSync(opts.input).size;
  con.closeSync?.();
  console.log(JSON.stringify({
    tool: 'duckdb', rows, seconds: +seconds.toFixed(3), rows_per_s: Math.round(rows / seconds),
    input_mb_per_s: +(bytes / 1e6 / seconds).toFixed(1), threads: opts.threads, min_count: opts.minCount,
    compression: opts.compression, phases_s: Object.fromEntries(
      Object.entries(times).map(([k, v]) => [k, +v.toFixed(3)])),
    output: opts.out, output_bytes: fs.statSync(opts.out).size,
  }));
}

// Per-column checksums, identical in definition to pandas_prep.py --summary:
//   categorical: distinct ids, max id, count of ids 0/1/2, sum of ids, order-sensitive sum of
//   id * (row % 7919); dense and label: sum and order-sensitive sum of value * (row % 7919).
async function summary(file) {
  if (!fs.existsSync(file)) throw new Error(`output file '${file}' does not exist`);
  const instance = await DuckDBInstance.create(':memory:', { threads: '2' });
  const con = await instance.connect();
  const w = '(file_row_number % 7919)';
  const exprs = [`count(*)::BIGINT AS rows`];
  for (const c of ['label', ...kDense]) {
    exprs.push(`sum(${c}::DOUBLE) AS ${c}_sum`, `sum(${c}::DOUBLE * ${w}) AS ${c}_wsum`);
  }
  for (const c of kCat) {
    exprs.push(`count(DISTINCT ${c})::BIGINT AS ${c}_distinct`, `max(${c})::BIGINT AS ${c}_max`,
               `count(*) FILTER (${c} = 0)::BIGINT AS ${c}_n0`, `count(*) FILTER (${c} = 1)::BIGINT AS ${c}_n1`,
               `count(*) FILTER (${c} = 2)::BIGINT AS ${c}_n2`, `sum(${c})::BIGINT AS ${c}_sum`,
               `sum(${c}::BIGINT * ${w})::BIGINT AS ${c}_wsum`);
  }
  const reader = await con.runAndReadAll(
    `SELECT ${exprs.join(', ')} FROM read_parquet(${lit(file)}, file_row_number=true)`);
  const row = reader.getRowObjectsJson()[0];
  const out = {};
  for (const [k, v] of Object.entries(row)) out[k] = Number(v);
  console.log(JSON.stringify(out));
}

const opts = parseArgs(process.argv.slice(2));
try {
  if (opts.summary) await summary(opts.summary);
  else await prep(opts);
} catch (err) {
  console.error(`duckdb_prep: ${err?.message ?? err}`);
  process.exit(1);
}
