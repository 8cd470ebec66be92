#include "bluewhale/tune/store.h"

#include <fcntl.h>
#include <sqlite3.h>
#include <sys/file.h>
#include <unistd.h>

#include <chrono>
#include <cmath>
#include <set>

#include "bluewhale/core/error.h"

namespace bluewhale::tune {
namespace {

constexpr int kBusyTimeoutMs = 10000;

double now_seconds() {
  return std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count();
}

// A prepared statement that finalises itself.
class Stmt {
 public:
  Stmt(sqlite3* db, const fs::path& path, const char* sql) : db_(db), path_(path) {
    check(sqlite3_prepare_v2(db, sql, -1, &st_, nullptr), sql);
  }
  ~Stmt() { sqlite3_finalize(st_); }
  Stmt& bind(int i, int64_t v) { return check(sqlite3_bind_int64(st_, i, v), "bind"), *this; }
  Stmt& bind(int i, double v) { return check(sqlite3_bind_double(st_, i, v), "bind"), *this; }
  Stmt& bind(int i, const std::string& v) {
    return check(sqlite3_bind_text(st_, i, v.data(), static_cast<int>(v.size()), SQLITE_TRANSIENT), "bind"), *this;
  }
  // true while rows come.
  bool step() {
    const int rc = sqlite3_step(st_);
    if (rc == SQLITE_ROW) return true;
    if (rc == SQLITE_DONE) return false;
    check(rc, "step");
    return false;
  }
  int64_t int_at(int c) const { return sqlite3_column_int64(st_, c); }
  double double_at(int c) const { return sqlite3_column_double(st_, c); }
  std::string text_at(int c) const {
    const auto* p = sqlite3_column_text(st_, c);
    return p ? std::string(reinterpret_cast<const char*>(p)) : std::string();
  }
  void check(int rc, const char* what) const;

 private:
  sqlite3* db_;
  fs::path path_;
  sqlite3_stmt* st_ = nullptr;
};

[[noreturn]] void fail(sqlite3* db, const fs::path& path, int rc, const std::string& what) {
  const std::string msg = db ? sqlite3_errmsg(db) : sqlite3_errstr(rc);
  const int primary = rc & 0xff;
  if (primary == SQLITE_NOTADB || primary == SQLITE_CORRUPT)
    BW_THROW(FormatError, path.string(), ": not a BlueWhale trial store, or corrupted (", msg,
             "); the file was left untouched");
  if (primary == SQLITE_BUSY || primary == SQLITE_LOCKED)
    BW_THROW(IoError, path.string(), ": the trial store stayed locked by another process for ", kBusyTimeoutMs / 1000,
             " s (", msg, ")");
  BW_THROW(IoError, path.string(), ": ", what, ": ", msg);
}

void Stmt::check(int rc, const char* what) const {
  if (rc != SQLITE_OK) fail(db_, path_, rc, what);
}

json parse_json(const std::string& text, const fs::path& path, const char* field) {
  try {
    return json::parse(text);
  } catch (const json::exception& e) {
    BW_THROW(FormatError, path.string(), ": trial store field ", field, " is not JSON: ", e.what());
  }
}

std::string csv_field(std::string s) {
  if (s.find_first_of(",\"\n") == std::string::npos) return s;
  std::string out = "\"";
  for (char c : s) out += c == '"' ? std::string("\"\"") : std::string(1, c);
  return out + "\"";
}

}  // namespace

const char* status_name(TrialStatus s) {
  switch (s) {
    case TrialStatus::kRunning: return "running";
    case TrialStatus::kComplete: return "complete";
    case TrialStatus::kPruned: return "pruned";
    case TrialStatus::kFailed: return "failed";
    case TrialStatus::kInterrupted: return "interrupted";
  }
  return "?";
}

TrialStatus parse_status(const std::string& s) {
  for (TrialStatus t : {TrialStatus::kRunning, TrialStatus::kComplete, TrialStatus::kPruned, TrialStatus::kFailed,
                        TrialStatus::kInterrupted})
    if (s == status_name(t)) return t;
  BW_THROW(FormatError, "trial store: unknown trial status '", s, "'");
}

void TrialStore::exec(const std::string& sql) const {
  char* err = nullptr;
  const int rc = sqlite3_exec(db_, sql.c_str(), nullptr, nullptr, &err);
  if (err) sqlite3_free(err);
  if (rc != SQLITE_OK) fail(db_, path_, rc, sql.substr(0, 40));
}

std::unique_ptr<TrialStore> TrialStore::open(const fs::path& path, bool read_only) {
  BW_CHECK(fs::exists(path), IoError, path.string(), ": no trial store here (start one with 'bluewhale tune')");
  std::unique_ptr<TrialStore> s(new TrialStore());
  s->path_ = path;
  // Readers open read-write too: a WAL database needs its -shm file, and a read-only open fails on a
  // store whose last writer was killed before checkpointing. read_only only records the caller's intent.
  (void)read_only;
  const int flags = SQLITE_OPEN_READWRITE | SQLITE_OPEN_FULLMUTEX;
  const int rc = sqlite3_open_v2(path.c_str(), &s->db_, flags, nullptr);
  if (rc != SQLITE_OK) fail(s->db_, path, rc, "open");
  sqlite3_busy_timeout(s->db_, kBusyTimeoutMs);
  s->load_study();
  return s;
}

void TrialStore::load_study() {
  {
    Stmt q(db_, path_, "SELECT name FROM sqlite_master WHERE type='table' AND name='meta'");
    BW_CHECK(q.step(), FormatError, path_.string(), ": not a BlueWhale trial store (no meta table)");
  }
  json meta = json::object();
  Stmt q(db_, path_, "SELECT key, value FROM meta");
  while (q.step()) meta[q.text_at(0)] = q.text_at(1);
  BW_CHECK(meta.value("format", "") == "bluewhale-tune", FormatError, path_.string(),
           ": not a BlueWhale trial store (format '", meta.value("format", ""), "')");
  int version = 0;
  try {
    version = std::stoi(meta.value("schema_version", "0"));
  } catch (const std::exception&) {
  }
  BW_CHECK(version >= 1 && version <= kStoreSchemaVersion, FormatError, path_.string(), ": trial store schema version ",
           meta.value("schema_version", "?"), " is not supported (this build reads 1..", kStoreSchemaVersion, ")");
  study_ = parse_json(meta.value("study", "null"), path_, "study");
  BW_CHECK(study_.is_object(), FormatError, path_.string(), ": trial store has no study description");
}

std::unique_ptr<TrialStore> TrialStore::open_or_create(const fs::path& path, const json& study) {
  if (fs::exists(path)) {
    auto s = open(path, false);
    {
      Stmt q(s->db_, path, "PRAGMA quick_check");
      BW_CHECK(q.step() && q.text_at(0) == "ok", FormatError, path.string(), ": trial store failed its integrity check: ",
               q.text_at(0));
    }
    for (const char* key : {"space", "objectives"})
      BW_CHECK(s->study_.value(key, json()) == study.value(key, json()), ConfigError, path.string(),
               ": this store holds a study with another ", key, " (", s->study_.value(key, json()).dump(),
               "); use another --out to start a new study");
    return s;
  }
  if (path.has_parent_path()) fs::create_directories(path.parent_path());
  std::unique_ptr<TrialStore> s(new TrialStore());
  s->path_ = path;
  // Built under a temporary name and renamed, so a crash never leaves a store without its meta.
  fs::path tmp = path;
  tmp += ".tmp-" + std::to_string(::getpid());
  fs::remove(tmp);
  {
    sqlite3* db = nullptr;
    const int rc = sqlite3_open_v2(tmp.c_str(), &db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, nullptr);
    if (rc != SQLITE_OK) {
      sqlite3_close(db);
      fail(nullptr, path, rc, "create");
    }
    s->db_ = db;
    s->exec(
        "CREATE TABLE meta(key TEXT PRIMARY KEY, value TEXT NOT NULL);"
        "CREATE TABLE trials(id INTEGER PRIMARY KEY, status TEXT NOT NULL, params TEXT NOT NULL,"
        " values_json TEXT NOT NULL DEFAULT '[]', error TEXT NOT NULL DEFAULT '', started REAL NOT NULL,"
        " finished REAL NOT NULL DEFAULT 0, seconds REAL NOT NULL DEFAULT 0, model_path TEXT NOT NULL DEFAULT '',"
        " worker INTEGER NOT NULL DEFAULT 0);"
        "CREATE TABLE intermediate(trial_id INTEGER NOT NULL REFERENCES trials(id), step INTEGER NOT NULL,"
        " value REAL, metrics TEXT NOT NULL DEFAULT '{}', PRIMARY KEY(trial_id, step));");
    for (const auto& [k, v] : std::vector<std::pair<std::string, std::string>>{
             {"format", "bluewhale-tune"}, {"schema_version", std::to_string(kStoreSchemaVersion)}, {"study", study.dump()}}) {
      Stmt i(db, tmp, "INSERT INTO meta(key, value) VALUES (?, ?)");
      i.bind(1, k).bind(2, v).step();
    }
    sqlite3_close(db);
    s->db_ = nullptr;
  }
  fs::rename(tmp, path);
  auto opened = open(path, false);
  opened->exec("PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;");
  return opened;
}

TrialStore::~TrialStore() {
  if (db_) sqlite3_close(db_);
  if (lock_fd_ >= 0) ::close(lock_fd_);  // releases the flock
}

void TrialStore::lock_for_run() {
  std::lock_guard<std::mutex> lk(mu_);
  if (lock_fd_ >= 0) return;
  fs::path lock = path_;
  lock += ".lock";
  const int fd = ::open(lock.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
  BW_CHECK(fd >= 0, IoError, lock.string(), ": cannot open the run lock");
  if (::flock(fd, LOCK_EX | LOCK_NB) != 0) {
    char buf[32] = {0};
    const ssize_t n = ::pread(fd, buf, sizeof buf - 1, 0);
    ::close(fd);
    BW_THROW(IoError, path_.string(), ": another tuning run is using this store",
             n > 0 ? " (pid " + std::string(buf, static_cast<std::size_t>(n)) + ")" : std::string(),
             "; wait for it or stop it, then run again to resume");
  }
  const std::string pid = std::to_string(::getpid());
  if (::ftruncate(fd, 0) == 0 && ::pwrite(fd, pid.data(), pid.size(), 0) < 0) {
    // The pid is only informative; the lock itself is held.
  }
  lock_fd_ = fd;
}

int64_t TrialStore::begin_trial(const json& params, int worker) {
  std::lock_guard<std::mutex> lk(mu_);
  Stmt q(db_, path_, "INSERT INTO trials(status, params, started, worker) VALUES ('running', ?, ?, ?)");
  q.bind(1, params.dump()).bind(2, now_seconds()).bind(3, static_cast<int64_t>(worker)).step();
  return sqlite3_last_insert_rowid(db_);
}

void TrialStore::report(int64_t id, int64_t step, double value, const json& metrics) {
  std::lock_guard<std::mutex> lk(mu_);
  Stmt q(db_, path_, "INSERT OR REPLACE INTO intermediate(trial_id, step, value, metrics) VALUES (?, ?, ?, ?)");
  q.bind(1, id).bind(2, step).bind(3, value).bind(4, metrics.dump()).step();
}

void TrialStore::finish(int64_t id, TrialStatus status, const std::vector<double>& values, const std::string& error,
                        const std::string& model_path) {
  std::lock_guard<std::mutex> lk(mu_);
  const double now = now_seconds();
  Stmt q(db_, path_,
         "UPDATE trials SET status = ?, values_json = ?, error = ?, finished = ?, seconds = ? - started,"
         " model_path = ? WHERE id = ?");
  q.bind(1, std::string(status_name(status))).bind(2, json(values).dump()).bind(3, error).bind(4, now).bind(5, now);
  q.bind(6, model_path).bind(7, id).step();
}

int TrialStore::mark_interrupted() {
  std::lock_guard<std::mutex> lk(mu_);
  exec("UPDATE trials SET status = 'interrupted', error = 'the tuning run stopped while this trial ran' "
       "WHERE status = 'running'");
  return sqlite3_changes(db_);
}

std::vector<Trial> TrialStore::trials() const {
  std::lock_guard<std::mutex> lk(mu_);
  std::vector<Trial> out;
  Stmt q(db_, path_,
         "SELECT id, status, params, values_json, error, started, finished, seconds, model_path, worker FROM trials "
         "ORDER BY id");
  while (q.step()) {
    Trial t;
    t.id = q.int_at(0);
    t.status = parse_status(q.text_at(1));
    t.params = parse_json(q.text_at(2), path_, "params");
    // A value the objective gave as NaN is stored as JSON null; it reads back as NaN.
    for (const auto& v : parse_json(q.text_at(3), path_, "values"))
      t.values.push_back(v.is_number() ? v.get<double>() : std::nan(""));
    t.error = q.text_at(4);
    t.started = q.double_at(5);
    t.finished = q.double_at(6);
    t.seconds = q.double_at(7);
    t.model_path = q.text_at(8);
    t.worker = static_cast<int>(q.int_at(9));
    out.push_back(std::move(t));
  }
  Stmt m(db_, path_, "SELECT trial_id, step, value FROM intermediate ORDER BY trial_id, step");
  std::size_t k = 0;
  while (m.step()) {
    const int64_t id = m.int_at(0);
    while (k < out.size() && out[k].id < id) ++k;
    if (k < out.size() && out[k].id == id) out[k].intermediate.emplace_back(m.int_at(1), m.double_at(2));
  }
  return out;
}

json TrialStore::export_json() const {
  json arr = json::array();
  for (const Trial& t : trials()) {
    json inter = json::array();
    for (auto [s, v] : t.intermediate) inter.push_back({{"step", s}, {"value", v}});
    arr.push_back({{"id", t.id},
                   {"status", status_name(t.status)},
                   {"params", t.params},
                   {"values", t.values},
                   {"error", t.error},
                   {"started", t.started},
                   {"finished", t.finished},
                   {"seconds", t.seconds},
                   {"model_path", t.model_path},
                   {"worker", t.worker},
                   {"intermediate", inter}});
  }
  return {{"study", study_}, {"trials", arr}};
}

std::string TrialStore::export_csv() const {
  std::vector<std::string> params, objectives;
  if (study_.contains("space"))
    for (const auto& p : study_["space"]) params.push_back(p.value("name", ""));
  if (study_.contains("objectives"))
    for (const auto& o : study_["objectives"]) objectives.push_back(o.value("name", ""));
  std::string out = "id,status,seconds";
  for (const auto& p : params) out += "," + csv_field(p);
  for (const auto& o : objectives) out += "," + csv_field(o);
  out += ",error\n";
  char buf[64];
  for (const Trial& t : trials()) {
    std::snprintf(buf, sizeof buf, "%lld,%s,%.3f", static_cast<long long>(t.id), status_name(t.status), t.seconds);
    out += buf;
    for (const auto& p : params) {
      out += ",";
      if (auto it = t.params.find(p); it != t.params.end()) out += csv_field(it->is_string() ? it->get<std::string>() : it->dump());
    }
    for (std::size_t i = 0; i < objectives.size(); ++i) {
      out += ",";
      if (i < t.values.size() && std::isfinite(t.values[i])) {
        std::snprintf(buf, sizeof buf, "%.10g", t.values[i]);
        out += buf;
      }
    }
    out += "," + csv_field(t.error) + "\n";
  }
  return out;
}

}  // namespace bluewhale::tune
