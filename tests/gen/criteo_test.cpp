#include "bluewhale/gen/criteo.h"

#include <gtest/gtest.h>
#include <zlib.h>

#include <algorithm>
#include <cmath>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>
#include <unordered_map>
#include <vector>

#include "bluewhale/core/error.h"
#include "bluewhale/core/io.h"
#include "bluewhale/core/metrics.h"
#include "test_util.h"

namespace bluewhale {
namespace {

using testing::TempDir;

std::vector<std::string> split_tabs(const std::string& line) {
  std::vector<std::string> out;
  std::size_t b = 0;
  for (;;) {
    const std::size_t e = line.find('\t', b);
    out.push_back(line.substr(b, e == std::string::npos ? std::string::npos : e - b));
    if (e == std::string::npos) return out;
    b = e + 1;
  }
}

std::vector<std::string> split_lines(const std::string& text) {
  std::vector<std::string> lines;
  std::istringstream in(text);
  for (std::string line; std::getline(in, line);) lines.push_back(line);
  return lines;
}

CriteoGenReport gen(const fs::path& out, int64_t rows, int threads, uint64_t seed = 1) {
  CriteoGenOptions o;
  o.rows = rows;
  o.out = out;
  o.threads = threads;
  o.seed = seed;
  o.progress = false;
  return generate_criteo(o);
}

// Tie-aware AUC written independently of roc_auc: comparison sort, then average ranks (Mann-Whitney U).
double rank_auc(const std::vector<float>& s, const std::vector<float>& y) {
  std::vector<std::size_t> idx(s.size());
  for (std::size_t i = 0; i < idx.size(); ++i) idx[i] = i;
  std::sort(idx.begin(), idx.end(), [&](std::size_t a, std::size_t b) { return s[a] < s[b]; });
  double pos_rank_sum = 0, pos = 0;
  for (std::size_t i = 0; i < idx.size();) {
    std::size_t j = i;
    while (j < idx.size() && s[idx[j]] == s[idx[i]]) ++j;
    const double avg_rank = 0.5 * static_cast<double>(i + 1 + j);  // ranks i+1 .. j
    for (std::size_t k = i; k < j; ++k)
      if (y[idx[k]] == 1.0f) pos_rank_sum += avg_rank, pos += 1;
    i = j;
  }
  const double neg = static_cast<double>(s.size()) - pos;
  return (pos_rank_sum - pos * (pos + 1) / 2) / (pos * neg);
}

// One 200k-row file shared by the statistical tests.
class CriteoGenFile : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = new TempDir();
    report_ = new CriteoGenReport(gen(*dir_ / "big.tsv", kRows, 2, 7));
    lines_ = new std::vector<std::string>(split_lines(read_file(*dir_ / "big.tsv")));
  }
  static void TearDownTestSuite() {
    delete lines_;
    delete report_;
    delete dir_;
  }
  static constexpr int64_t kRows = 200000;
  static inline TempDir* dir_ = nullptr;
  static inline CriteoGenReport* report_ = nullptr;
  static inline std::vector<std::string>* lines_ = nullptr;
};

TEST_F(CriteoGenFile, RowsHaveFortyWellFormedFields) {
  ASSERT_EQ(static_cast<int64_t>(lines_->size()), kRows);
  int64_t negatives_i2 = 0;
  for (const std::string& line : *lines_) {
    const auto f = split_tabs(line);
    ASSERT_EQ(static_cast<int>(f.size()), kCriteoFields) << line;
    ASSERT_TRUE(f[0] == "0" || f[0] == "1") << line;
    for (int j = 1; j <= kCriteoDense; ++j) {
      const std::string& v = f[j];
      if (v.empty()) continue;
      const std::size_t digits = v[0] == '-' ? 1 : 0;
      ASSERT_LT(digits, v.size()) << line;
      for (std::size_t i = digits; i < v.size(); ++i) ASSERT_TRUE(v[i] >= '0' && v[i] <= '9') << "I" << j << ": " << v;
      ASSERT_TRUE(v == "0" || v[digits] != '0') << "leading zero in I" << j << ": " << v;
      if (digits) {
        ASSERT_EQ(j, 2) << "only I2 may be negative: " << line;
        ++negatives_i2;
      }
    }
    for (int c = 0; c < kCriteoCategorical; ++c) {
      const std::string& v = f[1 + kCriteoDense + c];
      if (v.empty()) continue;
      ASSERT_EQ(v.size(), 8u) << "C" << c + 1 << ": " << v;
      for (char ch : v) ASSERT_TRUE((ch >= '0' && ch <= '9') || (ch >= 'a' && ch <= 'f')) << "C" << c + 1 << ": " << v;
    }
  }
  // The sample has -1/-2 in ~10% of I2.
  EXPECT_GT(negatives_i2, kRows / 20);
  EXPECT_LT(negatives_i2, kRows / 6);
  EXPECT_EQ(report_->text_bytes, report_->bytes);
  EXPECT_EQ(report_->bytes, bluewhale::file_size(*dir_ / "big.tsv"));
}

TEST_F(CriteoGenFile, MissingRatesMatchTheSampleAndTheReport) {
  std::vector<int64_t> missing(kCriteoDense + kCriteoCategorical, 0);
  int64_t i1_without_i10 = 0;
  for (const std::string& line : *lines_) {
    const auto f = split_tabs(line);
    for (int j = 0; j < kCriteoDense + kCriteoCategorical; ++j) missing[j] += f[1 + j].empty();
    i1_without_i10 += f[1].empty() != f[10].empty();
  }
  const auto& target = criteo_target_missing_rates();
  for (int j = 0; j < kCriteoDense + kCriteoCategorical; ++j) {
    const double rate = static_cast<double>(missing[j]) / kRows;
    EXPECT_NEAR(rate, target[j], 0.006) << "field " << j;
    EXPECT_DOUBLE_EQ(report_->missing_rate[j], rate) << "field " << j;
  }
  // I1 and I10 are missing together in the real data.
  EXPECT_EQ(i1_without_i10, 0);
}

TEST_F(CriteoGenFile, ClickRateAndBestAucAreCriteoLike) {
  EXPECT_GE(report_->click_rate, 0.23);
  EXPECT_LE(report_->click_rate, 0.26);
  EXPECT_GE(report_->best_auc_all, 0.78);
  EXPECT_LE(report_->best_auc_all, 0.82);
  EXPECT_GE(report_->best_auc_test, 0.77);
  EXPECT_LE(report_->best_auc_test, 0.83);
  EXPECT_EQ(report_->test_rows, kRows / 10);
  int64_t clicks = 0;
  for (const std::string& line : *lines_) clicks += line[0] == '1';
  EXPECT_DOUBLE_EQ(report_->click_rate, static_cast<double>(clicks) / kRows);
}

TEST_F(CriteoGenFile, BestAucEqualsRecomputationFromTruth) {
  const CriteoTruth truth = criteo_truth(kRows, 7, 1);
  ASSERT_EQ(static_cast<int64_t>(truth.label.size()), kRows);
  for (int64_t r = 0; r < kRows; ++r)
    ASSERT_EQ(truth.label[r], (*lines_)[r][0] == '1' ? 1.0f : 0.0f) << "row " << r;
  EXPECT_DOUBLE_EQ(report_->best_auc_all, roc_auc(truth.prob.data(), truth.label.data(), kRows, 1));
  EXPECT_NEAR(report_->best_auc_all, rank_auc(truth.prob, truth.label), 1e-9);
  const int64_t t0 = kRows - report_->test_rows;
  std::vector<float> ps(truth.prob.begin() + t0, truth.prob.end()), ys(truth.label.begin() + t0, truth.label.end());
  EXPECT_NEAR(report_->best_auc_test, rank_auc(ps, ys), 1e-9);
  EXPECT_DOUBLE_EQ(report_->bias, truth.bias);
  // The true probabilities are calibrated: their mean matches the click rate.
  double mean_p = 0;
  for (float p : truth.prob) mean_p += p;
  EXPECT_NEAR(mean_p / kRows, report_->click_rate, 0.005);
}

TEST_F(CriteoGenFile, SidecarHoldsTheReport) {
  const auto j = nlohmann::json::parse(read_file(report_->truth_path));
  EXPECT_EQ(report_->truth_path, *dir_ / "big.tsv.truth.json");
  EXPECT_EQ(j["seed"].get<uint64_t>(), 7u);
  EXPECT_EQ(j["rows"].get<int64_t>(), kRows);
  EXPECT_DOUBLE_EQ(j["best_auc_all"].get<double>(), report_->best_auc_all);
  EXPECT_DOUBLE_EQ(j["best_auc_test"].get<double>(), report_->best_auc_test);
  EXPECT_DOUBLE_EQ(j["click_rate"].get<double>(), report_->click_rate);
  EXPECT_EQ(j["target_cardinality"]["C3"].get<int64_t>(), 10131227);
  EXPECT_EQ(j["distinct_per_column"]["C9"].get<int64_t>(), 3);
  EXPECT_NEAR(j["missing_rate"]["I12"].get<double>(), 0.7738, 0.01);
}

TEST_F(CriteoGenFile, CategoricalFrequenciesFollowAPowerLaw) {
  auto counts_of = [&](int c) {
    std::unordered_map<std::string, int64_t> counts;
    for (const std::string& line : *lines_) {
      const std::string v = split_tabs(line)[1 + kCriteoDense + c];
      if (!v.empty()) ++counts[v];
    }
    std::vector<int64_t> freq;
    for (const auto& kv : counts) freq.push_back(kv.second);
    std::sort(freq.rbegin(), freq.rend());
    return freq;
  };
  // C3 (10M values): in the sample the top value has 3.9% of the rows, the 10th ~0.7%, and about
  // 58% of 13k draws are distinct.
  const auto c3 = counts_of(2);
  int64_t present = 0;
  for (int64_t f : c3) present += f;
  const double top = static_cast<double>(c3[0]) / static_cast<double>(present);
  EXPECT_GT(top, 0.025);
  EXPECT_LT(top, 0.055);
  const double ratio = static_cast<double>(c3[0]) / static_cast<double>(c3[9]);
  EXPECT_GT(ratio, 3.0);
  EXPECT_LT(ratio, 12.0);
  EXPECT_GT(static_cast<int64_t>(c3.size()), 50000);
  EXPECT_EQ(static_cast<int64_t>(c3.size()), report_->distinct_per_column[2]);
  // C9 has 3 values with one dominating (89% in the sample).
  const auto c9 = counts_of(8);
  ASSERT_EQ(c9.size(), 3u);
  EXPECT_NEAR(static_cast<double>(c9[0]) / kRows, 0.894, 0.01);
  for (int c = 0; c < kCriteoCategorical; ++c)
    EXPECT_LE(report_->distinct_per_column[c], criteo_vocab_sizes()[c]) << "C" << c + 1;
}

TEST_F(CriteoGenFile, IntegerColumnsHaveSampleLikeQuantiles) {
  auto quantile = [&](int j, double p) {
    std::vector<int64_t> v;
    for (const std::string& line : *lines_) {
      const std::string s = split_tabs(line)[j];
      if (!s.empty()) v.push_back(std::stoll(s));
    }
    std::sort(v.begin(), v.end());
    return v[static_cast<std::size_t>(p * static_cast<double>(v.size() - 1))];
  };
  // Medians and 90% quantiles of the sample, within rounding of the interpolation.
  EXPECT_EQ(quantile(1, 0.5), 1);  // I1
  EXPECT_NEAR(quantile(5, 0.5), 2810, 300);   // I5
  EXPECT_NEAR(quantile(5, 0.9), 33920, 3000);
  EXPECT_NEAR(quantile(9, 0.5), 40, 3);       // I9
  EXPECT_EQ(quantile(12, 0.5), 0);            // I12
  EXPECT_GT(quantile(2, 0.999), 2000);        // heavy tail of I2
}

TEST(CriteoGen, OutputIsIdenticalForAnyThreadCountAndPrefixStable) {
  TempDir dir;
  // 2.5 blocks: exercises a partial last block.
  const int64_t rows = 2 * kCriteoBlockRows + kCriteoBlockRows / 2;
  const auto r1 = gen(dir / "t1.tsv", rows, 1);
  const auto r2 = gen(dir / "t2.tsv", rows, 2);
  const auto r3 = gen(dir / "t3.tsv", rows, 3);
  const std::string a = read_file(dir / "t1.tsv");
  EXPECT_EQ(a, read_file(dir / "t2.tsv"));
  EXPECT_EQ(a, read_file(dir / "t3.tsv"));
  EXPECT_EQ(r1.best_auc_all, r2.best_auc_all);
  EXPECT_EQ(r1.distinct_per_column, r3.distinct_per_column);
  // A shorter run is a prefix of a longer one; another seed gives other rows.
  gen(dir / "short.tsv", 1000, 2);
  const std::string s = read_file(dir / "short.tsv");
  EXPECT_EQ(a.substr(0, s.size()), s);
  gen(dir / "seed2.tsv", 1000, 2, 2);
  EXPECT_NE(read_file(dir / "seed2.tsv"), s);
  // No temporary files are left behind.
  int files = 0;
  for (const auto& e : fs::directory_iterator(dir.path())) files += e.path().string().find(".tmp.") == std::string::npos;
  EXPECT_EQ(files, 10);  // 5 data files + 5 sidecars
}

TEST(CriteoGen, GzipOutputDecompressesToThePlainText) {
  TempDir dir;
  const int64_t rows = kCriteoBlockRows + 123;
  const auto plain = gen(dir / "a.tsv", rows, 2);
  const auto packed = gen(dir / "a.tsv.gz", rows, 2);
  EXPECT_LT(packed.bytes, plain.bytes / 2);
  EXPECT_EQ(packed.text_bytes, plain.bytes);
  EXPECT_EQ(packed.bytes, bluewhale::file_size(dir / "a.tsv.gz"));
  gzFile gz = gzopen((dir / "a.tsv.gz").c_str(), "rb");
  ASSERT_NE(gz, nullptr);
  std::string text;
  char buf[1 << 16];
  for (int n; (n = gzread(gz, buf, sizeof buf)) > 0;) text.append(buf, static_cast<std::size_t>(n));
  gzclose(gz);
  EXPECT_EQ(text, read_file(dir / "a.tsv"));
}

TEST(CriteoGen, BadOptionsAndUnwritablePathsAreClearErrors) {
  TempDir dir;
  CriteoGenOptions o;
  o.out = dir / "x.tsv";
  o.progress = false;
  o.rows = 0;
  try {
    generate_criteo(o);
    FAIL() << "expected ConfigError";
  } catch (const ConfigError& e) {
    EXPECT_NE(std::string(e.what()).find("rows must be >= 1, got 0"), std::string::npos) << e.what();
  }
  o.rows = -5;
  EXPECT_THROW(generate_criteo(o), ConfigError);
  o.rows = 10;
  o.test_fraction = 1.0;
  EXPECT_THROW(generate_criteo(o), ConfigError);
  o.test_fraction = 0.1;
  o.out = dir / "x.tsv.gz";
  o.gzip_level = 0;
  EXPECT_THROW(generate_criteo(o), ConfigError);
  o.gzip_level = 1;
  o.out = dir / "no" / "such" / "dir" / "x.tsv";
  try {
    generate_criteo(o);
    FAIL() << "expected IoError";
  } catch (const IoError& e) {
    EXPECT_NE(std::string(e.what()).find("no/such/dir"), std::string::npos) << e.what();
  }
  EXPECT_THROW(criteo_truth(0, 1), ConfigError);
  EXPECT_TRUE(fs::is_empty(dir.path()));
}

TEST(CriteoGen, TargetsMatchTheRealSample) {
  const fs::path sample = testing::shared_data_dir() / "criteo" / "criteo_dac_13k.tsv";
  if (testing::shared_data_dir().empty() || !fs::exists(sample)) GTEST_SKIP() << "no shared Criteo sample";
  const auto lines = split_lines(read_file(sample));
  std::vector<int64_t> missing(kCriteoDense + kCriteoCategorical, 0);
  for (const std::string& line : lines) {
    const auto f = split_tabs(line);
    ASSERT_EQ(static_cast<int>(f.size()), kCriteoFields);
    for (int j = 0; j < kCriteoDense + kCriteoCategorical; ++j) missing[j] += f[1 + j].empty();
  }
  for (int j = 0; j < kCriteoDense + kCriteoCategorical; ++j)
    EXPECT_NEAR(static_cast<double>(missing[j]) / static_cast<double>(lines.size()), criteo_target_missing_rates()[j],
                1e-4)
        << "field " << j;
}

}  // namespace
}  // namespace bluewhale
