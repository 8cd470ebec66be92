#include "bluewhale/tune/store.h"

#include <gtest/gtest.h>
#include <sqlite3.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmath>

#include "bluewhale/core/error.h"
#include "bluewhale/core/io.h"
#include "test_util.h"

using namespace bluewhale;
using namespace bluewhale::tune;
using bluewhale::testing::TempDir;

namespace {

json study() {
  return {{"space", json::array({{{"name", "lr"}, {"type", "float"}, {"low", 0.001}, {"high", 1.0}, {"log", true}},
                                 {{"name", "opt"}, {"type", "categorical"}, {"choices", {"sgd", "adam"}}}})},
          {"objectives", json::array({{{"name", "auc"}, {"direction", "max"}}, {{"name", "seconds"}, {"direction", "min"}}})}};
}

using bluewhale::testing::error_of;

}  // namespace

TEST(TrialStore, RecordsTrialsIntermediatesAndReadsThemBack) {
  TempDir dir;
  const fs::path db = dir / "t/trials.db";
  {
    auto s = TrialStore::open_or_create(db, study());
    const int64_t a = s->begin_trial({{"lr", 0.1}, {"opt", "sgd"}}, 0);
    const int64_t b = s->begin_trial({{"lr", 0.01}, {"opt", "adam"}}, 1);
    EXPECT_EQ(a, 1);
    EXPECT_EQ(b, 2);
    s->report(a, 100, 0.70, {{"logloss", 0.5}});
    s->report(a, 200, 0.75);
    s->finish(a, TrialStatus::kComplete, {0.75, 12.5}, "", "runs/1");
    s->finish(b, TrialStatus::kFailed, {}, "loss is NaN at step 3");
  }
  auto s = TrialStore::open(db);
  EXPECT_EQ(s->study(), study());
  auto t = s->trials();
  ASSERT_EQ(t.size(), 2u);
  EXPECT_EQ(t[0].status, TrialStatus::kComplete);
  EXPECT_EQ(t[0].params["opt"], "sgd");
  EXPECT_EQ(t[0].values, (std::vector<double>{0.75, 12.5}));
  EXPECT_EQ(t[0].model_path, "runs/1");
  ASSERT_EQ(t[0].intermediate.size(), 2u);
  EXPECT_EQ(t[0].intermediate[1], (std::pair<int64_t, double>{200, 0.75}));
  EXPECT_GE(t[0].seconds, 0);
  EXPECT_GT(t[0].started, 1.6e9);
  EXPECT_EQ(t[1].status, TrialStatus::kFailed);
  EXPECT_EQ(t[1].error, "loss is NaN at step 3");
  EXPECT_EQ(t[1].worker, 1);
}

TEST(TrialStore, NanValuesRoundTripAsNan) {
  TempDir dir;
  auto s = TrialStore::open_or_create(dir / "t.db", study());
  s->finish(s->begin_trial({{"lr", 0.1}, {"opt", "sgd"}}, 0), TrialStatus::kFailed, {std::nan(""), 1.0}, "nan");
  auto t = s->trials();
  ASSERT_EQ(t[0].values.size(), 2u);
  EXPECT_TRUE(std::isnan(t[0].values[0]));
  EXPECT_EQ(t[0].values[1], 1.0);
}

TEST(TrialStore, RunningTrialsOfAKilledRunBecomeInterrupted) {
  TempDir dir;
  const fs::path db = dir / "t.db";
  // A child process starts a trial and dies without finishing it or closing the database.
  pid_t pid = fork();
  if (pid == 0) {
    auto s = TrialStore::open_or_create(db, study());
    s->lock_for_run();
    s->finish(s->begin_trial({{"lr", 0.5}, {"opt", "sgd"}}, 0), TrialStatus::kComplete, {0.7, 1.0});
    s->begin_trial({{"lr", 0.2}, {"opt", "adam"}}, 0);
    ::_exit(0);
  }
  int st = 0;
  waitpid(pid, &st, 0);
  ASSERT_TRUE(WIFEXITED(st));
  auto s = TrialStore::open_or_create(db, study());
  s->lock_for_run();  // the dead run's lock went with it
  EXPECT_EQ(s->mark_interrupted(), 1);
  auto t = s->trials();
  ASSERT_EQ(t.size(), 2u);
  EXPECT_EQ(t[0].status, TrialStatus::kComplete);
  EXPECT_EQ(t[1].status, TrialStatus::kInterrupted);
  EXPECT_EQ(t[1].params["lr"], 0.2);
  EXPECT_EQ(s->begin_trial({{"lr", 0.2}, {"opt", "adam"}}, 0), 3);
}

TEST(TrialStore, SecondRunOnTheSameStoreIsRefused) {
  TempDir dir;
  auto a = TrialStore::open_or_create(dir / "t.db", study());
  a->lock_for_run();
  auto b = TrialStore::open_or_create(dir / "t.db", study());
  const std::string e = error_of([&] { b->lock_for_run(); });
  EXPECT_NE(e.find("another tuning run is using this store (pid " + std::to_string(::getpid()) + ")"), std::string::npos) << e;
  // Readers still work while the run holds the lock.
  a->begin_trial({{"lr", 0.3}, {"opt", "sgd"}}, 0);
  EXPECT_EQ(b->trials().size(), 1u);
}

TEST(TrialStore, CorruptedOrForeignFilesAreFormatErrorsAndStayUntouched) {
  TempDir dir;
  const fs::path db = dir / "t.db";
  const std::string junk = "this is not a database, but someone's notes\n" + std::string(5000, 'x');
  write_file_atomic(db, junk);
  std::string e = error_of([&] { TrialStore::open_or_create(db, study()); });
  EXPECT_NE(e.find("t.db: not a BlueWhale trial store, or corrupted"), std::string::npos) << e;
  EXPECT_EQ(read_file(db), junk);
  EXPECT_THROW(TrialStore::open(db), FormatError);

  // A valid SQLite database that is not ours.
  const fs::path other = dir / "other.db";
  {
    sqlite3* raw = nullptr;
    ASSERT_EQ(sqlite3_open(other.c_str(), &raw), SQLITE_OK);
    ASSERT_EQ(sqlite3_exec(raw, "CREATE TABLE notes(x TEXT)", nullptr, nullptr, nullptr), SQLITE_OK);
    sqlite3_close(raw);
  }
  e = error_of([&] { TrialStore::open_or_create(other, study()); });
  EXPECT_NE(e.find("other.db: not a BlueWhale trial store (no meta table)"), std::string::npos) << e;
  // Truncating a store in the middle of its pages corrupts it.
  const fs::path cut = dir / "cut.db";
  {
    auto s = TrialStore::open_or_create(cut, study());
    for (int i = 0; i < 200; ++i) s->finish(s->begin_trial({{"lr", 0.1}, {"opt", "sgd"}}, 0), TrialStatus::kComplete, {0.5, 1.0});
  }
  std::string bytes = read_file(cut);
  ASSERT_GT(bytes.size(), 8192u);
  for (std::size_t i = 4096; i < 8192; ++i) bytes[i] = static_cast<char>(0xA5);
  write_file_atomic(cut, bytes);
  e = error_of([&] { TrialStore::open_or_create(cut, study())->trials(); });
  EXPECT_NE(e.find("cut.db"), std::string::npos) << e;
  EXPECT_FALSE(e.empty());
}

TEST(TrialStore, ExistingStoreWithAnotherSpaceIsAConfigError) {
  TempDir dir;
  TrialStore::open_or_create(dir / "t.db", study());
  json other = study();
  other["space"][0]["high"] = 2.0;
  const std::string e = error_of([&] { TrialStore::open_or_create(dir / "t.db", other); });
  EXPECT_NE(e.find("holds a study with another space"), std::string::npos) << e;
  EXPECT_NE(error_of([&] { TrialStore::open(dir / "none.db"); }).find("no trial store here"), std::string::npos);
}

TEST(TrialStore, ExportsCsvAndJson) {
  TempDir dir;
  auto s = TrialStore::open_or_create(dir / "t.db", study());
  s->finish(s->begin_trial({{"lr", 0.1}, {"opt", "sgd"}}, 0), TrialStatus::kComplete, {0.75, 2.5});
  s->finish(s->begin_trial({{"lr", 0.2}, {"opt", "adam"}}, 0), TrialStatus::kFailed, {}, "crashed, with \"quotes\"");
  const std::string csv = s->export_csv();
  const auto first_nl = csv.find('\n');
  EXPECT_EQ(csv.substr(0, first_nl), "id,status,seconds,lr,opt,auc,seconds,error");
  EXPECT_NE(csv.find(",0.1,sgd,0.75,2.5,\n"), std::string::npos) << csv;
  EXPECT_NE(csv.find(",0.2,adam,,,\"crashed, with \"\"quotes\"\"\"\n"), std::string::npos) << csv;
  json j = s->export_json();
  ASSERT_EQ(j["trials"].size(), 2u);
  EXPECT_EQ(j["trials"][1]["status"], "failed");
  EXPECT_EQ(j["study"], study());
}
