#include "bluewhale/nn/embedding.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <random>
#include <string>
#include <vector>

#include "bluewhale/core/cpu.h"
#include "bluewhale/core/error.h"
#include "nn/embedding_kernels.h"
#include "test_util.h"

namespace bluewhale {
namespace {

using embedding_detail::embedding_bag_forward_reference;

// Every test runs at every SIMD level.
class Embedding : public testing::SimdLevelTest {};

// Lookups of one table in owned storage.
struct Lookups {
  std::vector<int32_t> ids;
  std::vector<int64_t> offsets;  // empty = one-hot
  EmbeddingBags view() const { return {ids.data(), offsets.empty() ? nullptr : offsets.data()}; }
};

// Random bags of 0..max_len ids (max_len 0 = one-hot), ids uniform in [0, rows). A few bags are forced
// empty and a few get the same id twice, so both edge cases are always present.
Lookups random_lookups(int64_t batch, int64_t rows, int max_len, std::mt19937& rng) {
  Lookups l;
  std::uniform_int_distribution<int32_t> id(0, static_cast<int32_t>(rows - 1));
  if (max_len == 0) {
    for (int64_t b = 0; b < batch; ++b) l.ids.push_back(id(rng));
    return l;
  }
  std::uniform_int_distribution<int> len(0, max_len);
  l.offsets.push_back(0);
  for (int64_t b = 0; b < batch; ++b) {
    int n = b % 7 == 3 ? 0 : len(rng);
    for (int k = 0; k < n; ++k) l.ids.push_back(id(rng));
    if (b % 5 == 1) {
      int32_t dup = id(rng);
      l.ids.push_back(dup);
      l.ids.push_back(dup);
    }
    l.offsets.push_back(static_cast<int64_t>(l.ids.size()));
  }
  return l;
}

std::vector<EmbeddingTable> make_tables(const std::vector<int64_t>& rows, int64_t dim, uint64_t seed) {
  std::vector<EmbeddingTable> tables;
  for (size_t t = 0; t < rows.size(); ++t) tables.push_back(make_embedding_table(rows[t], dim, seed + t, 1));
  return tables;
}

struct Batch {
  std::vector<Lookups> lookups;
  std::vector<EmbeddingBags> views;
  EmbeddingBatch batch;
};

Batch make_batch(const std::vector<EmbeddingTable>& tables, int64_t batch, int max_len, PoolingMode mode,
                 std::mt19937& rng) {
  Batch b;
  for (const EmbeddingTable& t : tables) b.lookups.push_back(random_lookups(batch, t.rows, max_len, rng));
  for (const Lookups& l : b.lookups) b.views.push_back(l.view());
  b.batch.batch = batch;
  b.batch.bags = b.views;
  b.batch.mode = mode;
  return b;
}

std::vector<float> weights_of(const EmbeddingTable& t) { return {t.weights.begin(), t.weights.end()}; }

TEST_P(Embedding, ForwardMatchesReferenceOverDimsModesAndBagShapes) {
  std::mt19937 rng(1);
  for (int64_t dim : {1, 3, 8, 16, 17, 64, 128}) {
    for (int max_len : {0, 4}) {
      for (PoolingMode mode : {PoolingMode::kSum, PoolingMode::kMean}) {
        SCOPED_TRACE(::testing::Message() << "dim " << dim << " max_len " << max_len << " mean "
                                        << (mode == PoolingMode::kMean));
        auto tables = make_tables({1, 7, 1000, 33}, dim, 42);
        const int64_t batch = 37, ld = dim + 5;
        Batch b = make_batch(tables, batch, max_len, mode, rng);
        // Per-table strided outputs with a gap after each row that the kernels must leave alone.
        std::vector<std::vector<float>> got(tables.size(), std::vector<float>(batch * ld, -7.0f));
        std::vector<std::vector<float>> want(tables.size(), std::vector<float>(batch * ld, -7.0f));
        std::vector<EmbeddingOut> got_views, want_views;
        for (size_t t = 0; t < tables.size(); ++t) {
          got_views.push_back({got[t].data(), ld});
          want_views.push_back({want[t].data(), ld});
        }
        embedding_bag_forward(tables, b.batch, got_views, 2);
        embedding_bag_forward_reference(tables, b.batch, want_views);
        for (size_t t = 0; t < tables.size(); ++t)
          for (int64_t i = 0; i < batch * ld; ++i)
            ASSERT_NEAR(got[t][i], want[t][i], 1e-6f) << "table " << t << " bag " << i / ld << " col " << i % ld;
      }
    }
  }
}

TEST_P(Embedding, EmptyBagsGiveZeros) {
  auto tables = make_tables({10}, 17, 3);
  std::vector<int32_t> ids = {1, 2, 3};
  std::vector<int64_t> offsets = {0, 0, 3, 3};  // bags 0 and 2 empty
  EmbeddingBags bags{ids.data(), offsets.data()};
  for (PoolingMode mode : {PoolingMode::kSum, PoolingMode::kMean}) {
    EmbeddingBatch batch{3, {&bags, 1}, mode, true};
    std::vector<float> out(3 * 17, std::numeric_limits<float>::quiet_NaN());
    embedding_bag_forward(tables, batch, out.data(), 17, 1);
    for (int d = 0; d < 17; ++d) {
      EXPECT_EQ(out[d], 0.0f);
      EXPECT_EQ(out[2 * 17 + d], 0.0f);
      EXPECT_FALSE(std::isnan(out[17 + d]));
    }
  }
}

TEST_P(Embedding, ConcatenatedOutputPlacesTablesSideBySide) {
  std::mt19937 rng(2);
  std::vector<EmbeddingTable> tables;
  tables.push_back(make_embedding_table(50, 16, 1, 1));
  tables.push_back(make_embedding_table(9, 3, 2, 1));
  tables.push_back(make_embedding_table(300, 8, 3, 1));
  Batch b = make_batch(tables, 20, 3, PoolingMode::kSum, rng);
  const int64_t ld = 16 + 3 + 8;
  std::vector<float> cat(20 * ld);
  embedding_bag_forward(tables, b.batch, cat.data(), ld, 1);
  int64_t col = 0;
  for (size_t t = 0; t < tables.size(); ++t) {
    std::vector<float> one(20 * tables[t].dim);
    std::vector<EmbeddingOut> views(tables.size(), EmbeddingOut{nullptr, 0});
    EmbeddingBags only = b.views[t];
    EmbeddingBatch single{20, {&only, 1}, PoolingMode::kSum, true};
    EmbeddingOut view{one.data(), tables[t].dim};
    embedding_bag_forward_reference(std::span<const EmbeddingTable>(&tables[t], 1), single, {&view, 1});
    for (int64_t bag = 0; bag < 20; ++bag)
      for (int64_t d = 0; d < tables[t].dim; ++d)
        EXPECT_EQ(cat[bag * ld + col + d], one[bag * tables[t].dim + d]);
    col += tables[t].dim;
  }
}

void expect_input_error(const std::function<void()>& fn, const std::vector<std::string>& parts) {
  try {
    fn();
    ADD_FAILURE() << "expected InputError";
  } catch (const InputError& e) {
    for (const std::string& p : parts) EXPECT_NE(std::string(e.what()).find(p), std::string::npos) << e.what();
  }
}

TEST_P(Embedding, OutOfRangeAndNegativeIdsNameTableBagAndId) {
  auto tables = make_tables({100, 20}, 16, 5);
  for (int32_t bad : {20, -3, std::numeric_limits<int32_t>::max()}) {
    for (bool one_hot : {true, false}) {
      SCOPED_TRACE(::testing::Message() << "bad " << bad << " one_hot " << one_hot);
      std::vector<int32_t> ids0(600, 7), ids1(600, 19);
      std::vector<int64_t> offsets(601);
      for (int64_t b = 0; b <= 600; ++b) offsets[b] = b;
      ids1[517] = bad;
      std::vector<EmbeddingBags> bags = {{ids0.data(), one_hot ? nullptr : offsets.data()},
                                         {ids1.data(), one_hot ? nullptr : offsets.data()}};
      EmbeddingBatch batch{600, bags, PoolingMode::kSum, true};
      std::vector<float> out(600 * 32), grad(600 * 32, 1.0f);
      const std::vector<std::string> parts = {"table 1", "bag 517", "id " + std::to_string(bad)};
      expect_input_error([&] { embedding_bag_forward(tables, batch, out.data(), 32, 2); }, parts);
      const auto before0 = weights_of(tables[0]), before1 = weights_of(tables[1]);
      expect_input_error([&] { embedding_bag_backward_sgd(tables, batch, grad.data(), 32, 0.1f, 2); }, parts);
      expect_input_error(
          [&] { embedding_bag_backward_rowwise_adagrad(tables, batch, grad.data(), 32, 0.1f, 1e-8f, 2); }, parts);
      // A rejected batch must not have touched any table, including the valid one.
      EXPECT_EQ(weights_of(tables[0]), before0);
      EXPECT_EQ(weights_of(tables[1]), before1);
    }
  }
}

TEST_P(Embedding, DecreasingOffsetsAreRejected) {
  auto tables = make_tables({10}, 8, 5);
  std::vector<int32_t> ids = {1, 2, 3};
  std::vector<int64_t> offsets = {0, 2, 1, 3};
  EmbeddingBags bags{ids.data(), offsets.data()};
  EmbeddingBatch batch{3, {&bags, 1}, PoolingMode::kSum, true};
  std::vector<float> out(3 * 8), grad(3 * 8, 1.0f);
  expect_input_error([&] { embedding_bag_forward(tables, batch, out.data(), 8, 1); }, {"table 0", "bag 1"});
  expect_input_error([&] { embedding_bag_backward_sgd(tables, batch, grad.data(), 8, 0.1f, 1); }, {"bag 1"});
}

// Brute-force dense gradient (R, D) per table, in double.
std::vector<std::vector<double>> dense_gradient(const std::vector<EmbeddingTable>& tables, const Batch& b,
                                                const std::vector<float>& grad, int64_t ld) {
  std::vector<std::vector<double>> g(tables.size());
  int64_t col = 0;
  for (size_t t = 0; t < tables.size(); ++t) {
    const int64_t dim = tables[t].dim;
    g[t].assign(tables[t].rows * dim, 0.0);
    const Lookups& l = b.lookups[t];
    for (int64_t bag = 0; bag < b.batch.batch; ++bag) {
      const int64_t begin = l.offsets.empty() ? bag : l.offsets[bag];
      const int64_t end = l.offsets.empty() ? bag + 1 : l.offsets[bag + 1];
      const double scale = b.batch.mode == PoolingMode::kMean && end > begin ? 1.0 / (end - begin) : 1.0;
      for (int64_t j = begin; j < end; ++j)
        for (int64_t d = 0; d < dim; ++d) g[t][l.ids[j] * dim + d] += scale * grad[bag * ld + col + d];
    }
    col += dim;
  }
  return g;
}

// Runs the fused backward and checks it against the dense reference optimizer step, applied to the rows
// the batch touched (all other rows must stay bit-identical).
void check_backward(bool adagrad, int64_t dim, int max_len, PoolingMode mode, uint32_t seed,
                    std::vector<float> weight_decay = {0, 0, 0}) {
  std::mt19937 rng(seed);
  // Tiny tables force duplicates within and across bags; the big one mostly unique rows.
  auto tables = make_tables({3, 40, 5000}, dim, seed);
  for (size_t t = 0; t < tables.size(); ++t) tables[t].weight_decay = weight_decay[t];
  const int64_t batch = 64, ld = 3 * dim;
  const float lr = 0.05f, eps = 1e-6f;
  std::vector<std::vector<double>> state(tables.size());
  for (size_t t = 0; t < tables.size(); ++t) state[t].assign(tables[t].rows, 0.0);
  EmbeddingWorkspace ws;
  for (int step = 0; step < 2; ++step) {  // two steps: Adagrad state must accumulate
    Batch b = make_batch(tables, batch, max_len, mode, rng);
    std::vector<float> grad(batch * ld);
    std::normal_distribution<float> normal(0.0f, 1.0f);
    for (float& x : grad) x = normal(rng);
    auto g = dense_gradient(tables, b, grad, ld);
    std::vector<std::vector<double>> want(tables.size());
    std::vector<std::vector<bool>> touched(tables.size());
    for (size_t t = 0; t < tables.size(); ++t) {
      touched[t].assign(tables[t].rows, false);
      for (int32_t id : b.lookups[t].ids) touched[t][id] = true;
      want[t].assign(tables[t].weights.begin(), tables[t].weights.end());
      for (int64_t r = 0; r < tables[t].rows; ++r) {
        if (!touched[t][r]) continue;
        double step_size = lr;
        if (adagrad) {
          double ss = 0;
          for (int64_t d = 0; d < dim; ++d) ss += g[t][r * dim + d] * g[t][r * dim + d];
          state[t][r] += ss / dim;
          step_size = lr / (std::sqrt(state[t][r]) + eps);
        }
        const double decay = 1.0 - static_cast<double>(lr) * weight_decay[t];
        for (int64_t d = 0; d < dim; ++d)
          want[t][r * dim + d] = want[t][r * dim + d] * decay - step_size * g[t][r * dim + d];
      }
    }
    if (adagrad) embedding_bag_backward_rowwise_adagrad(tables, b.batch, grad.data(), ld, lr, eps, 2, &ws);
    else embedding_bag_backward_sgd(tables, b.batch, grad.data(), ld, lr, 2, &ws);
    for (size_t t = 0; t < tables.size(); ++t) {
      for (int64_t r = 0; r < tables[t].rows; ++r) {
        if (adagrad && touched[t][r]) {
          ASSERT_NEAR(tables[t].adagrad_state[r], state[t][r], 1e-5 * (1 + state[t][r])) << "table " << t;
        }
        for (int64_t d = 0; d < dim; ++d) {
          const int64_t i = r * dim + d;
          if (touched[t][r])
            ASSERT_NEAR(tables[t].weights[i], want[t][i], 2e-6 * (1 + std::abs(want[t][i])))
                << "step " << step << " table " << t << " row " << r << " col " << d;
          else
            ASSERT_EQ(tables[t].weights[i], static_cast<float>(want[t][i])) << "untouched row changed";
        }
      }
    }
  }
}

TEST_P(Embedding, BackwardSgdMatchesDenseReferenceWithDuplicateIds) {
  for (int64_t dim : {1, 3, 8, 16, 17, 64})
    for (int max_len : {0, 5})
      for (PoolingMode mode : {PoolingMode::kSum, PoolingMode::kMean}) {
        SCOPED_TRACE(::testing::Message() << "dim " << dim << " max_len " << max_len);
        check_backward(false, dim, max_len, mode, 10 + static_cast<uint32_t>(dim));
      }
}

TEST_P(Embedding, BackwardRowwiseAdagradMatchesDenseReferenceWithDuplicateIds) {
  for (int64_t dim : {1, 3, 8, 16, 17, 64})
    for (int max_len : {0, 5})
      for (PoolingMode mode : {PoolingMode::kSum, PoolingMode::kMean}) {
        SCOPED_TRACE(::testing::Message() << "dim " << dim << " max_len " << max_len);
        check_backward(true, dim, max_len, mode, 20 + static_cast<uint32_t>(dim));
      }
}

TEST_P(Embedding, WeightDecayShrinksOnlyTouchedRowsOfItsTable) {
  for (bool adagrad : {false, true})
    for (int64_t dim : {1, 8, 16, 17, 64}) {
      SCOPED_TRACE(::testing::Message() << "adagrad " << adagrad << " dim " << dim);
      check_backward(adagrad, dim, 5, PoolingMode::kSum, 30 + static_cast<uint32_t>(dim), {0.5f, 0, 3.0f});
    }
}

TEST_P(Embedding, WeightDecayOutsideItsRangeIsRejectedBeforeAnyUpdate) {
  auto tables = make_tables({10, 10}, 4, 1);
  const std::vector<float> before(tables[0].weights.begin(), tables[0].weights.end());
  std::vector<int32_t> ids{1, 2};
  EmbeddingBags bags[2] = {{ids.data(), nullptr}, {ids.data(), nullptr}};
  EmbeddingBatch batch{2, bags};
  std::vector<float> grad(2 * 8, 1.0f);
  for (float wd : {-0.1f, 20.0f, std::numeric_limits<float>::quiet_NaN()}) {
    tables[1].weight_decay = wd;
    try {
      embedding_bag_backward_sgd(tables, batch, grad.data(), 8, 0.1f, 2);
      FAIL() << "weight_decay " << wd << " accepted";
    } catch (const ConfigError& e) {
      EXPECT_NE(std::string(e.what()).find("embedding table 1: weight_decay"), std::string::npos) << e.what();
    }
    EXPECT_TRUE(std::equal(before.begin(), before.end(), tables[0].weights.begin())) << "table 0 updated";
  }
}

TEST_P(Embedding, ResultsAreIdenticalFor1To4Threads) {
  for (int64_t dim : {16, 17}) {
    std::vector<std::vector<float>> fwd, sgd, ada, ada_state;
    for (int threads : {1, 2, 4}) {
      std::mt19937 rng(7);  // same batch for every thread count
      auto tables = make_tables({5, 1000, 100000, 64}, dim, 9);
      Batch b = make_batch(tables, 700, 6, PoolingMode::kMean, rng);  // well above the serial threshold
      const int64_t ld = 4 * dim;
      std::vector<float> out(700 * ld), grad(700 * ld);
      std::normal_distribution<float> normal(0.0f, 1.0f);
      for (float& x : grad) x = normal(rng);
      embedding_bag_forward(tables, b.batch, out.data(), ld, threads);
      fwd.push_back(out);
      embedding_bag_backward_sgd(tables, b.batch, grad.data(), ld, 0.1f, threads);
      sgd.push_back(weights_of(tables[1]));
      embedding_bag_backward_rowwise_adagrad(tables, b.batch, grad.data(), ld, 0.1f, 1e-8f, threads);
      embedding_bag_backward_rowwise_adagrad(tables, b.batch, grad.data(), ld, 0.1f, 1e-8f, threads);
      ada.push_back(weights_of(tables[0]));
      ada_state.push_back({tables[2].adagrad_state.begin(), tables[2].adagrad_state.end()});
    }
    for (size_t i = 1; i < fwd.size(); ++i) {
      EXPECT_EQ(fwd[i], fwd[0]) << "dim " << dim;
      EXPECT_EQ(sgd[i], sgd[0]) << "dim " << dim;
      EXPECT_EQ(ada[i], ada[0]) << "dim " << dim;
      EXPECT_EQ(ada_state[i], ada_state[0]) << "dim " << dim;
    }
  }
}

// loss = sum over bags and columns of out * r, with a fixed random r. Its gradient w.r.t. the pooled output
// is r, so one SGD step with lr 1 moves each table entry by exactly -dloss/dw.
TEST_P(Embedding, BackwardGradientMatchesFiniteDifferences) {
  for (PoolingMode mode : {PoolingMode::kSum, PoolingMode::kMean}) {
    std::mt19937 rng(11);
    auto tables = make_tables({6, 50}, 17, 13);
    const int64_t batch = 24, ld = 34;
    Batch b = make_batch(tables, batch, 4, mode, rng);
    std::vector<float> r(batch * ld);
    std::uniform_real_distribution<float> uni(-1.0f, 1.0f);
    for (float& x : r) x = uni(rng);
    auto loss = [&] {
      std::vector<float> out(batch * ld);
      embedding_bag_forward(tables, b.batch, out.data(), ld, 1);
      double s = 0;
      for (size_t i = 0; i < out.size(); ++i) s += static_cast<double>(out[i]) * r[i];
      return s;
    };
    struct Probe {
      size_t table;
      int64_t index;
    };
    std::vector<Probe> probes;
    for (size_t t = 0; t < tables.size(); ++t)
      for (int k = 0; k < 6; ++k) probes.push_back({t, static_cast<int64_t>(b.lookups[t].ids[k * 3]) * 17 + k * 3});
    probes.push_back({1, 49 * 17 + 16});  // possibly untouched: gradient must then be zero
    const float h = 1e-2f;
    std::vector<double> numeric;
    for (const Probe& p : probes) {
      float& w = tables[p.table].weights[p.index];
      const float w0 = w;
      w = w0 + h;
      const double up = loss();
      w = w0 - h;
      const double down = loss();
      w = w0;
      numeric.push_back((up - down) / (2.0 * h));
    }
    std::vector<std::vector<float>> before = {weights_of(tables[0]), weights_of(tables[1])};
    embedding_bag_backward_sgd(tables, b.batch, r.data(), ld, 1.0f, 1);
    for (size_t i = 0; i < probes.size(); ++i) {
      const double analytic = before[probes[i].table][probes[i].index] - tables[probes[i].table].weights[probes[i].index];
      EXPECT_NEAR(analytic, numeric[i], 2e-3 * (1 + std::abs(numeric[i]))) << "probe " << i;
    }
  }
}

TEST_P(Embedding, UncheckedForwardMatchesCheckedOnValidIds) {
  std::mt19937 rng(3);
  auto tables = make_tables({100, 7}, 16, 1);
  Batch b = make_batch(tables, 50, 3, PoolingMode::kSum, rng);
  std::vector<float> checked(50 * 32), unchecked(50 * 32);
  embedding_bag_forward(tables, b.batch, checked.data(), 32, 1);
  b.batch.check_ids = false;
  embedding_bag_forward(tables, b.batch, unchecked.data(), 32, 1);
  EXPECT_EQ(checked, unchecked);
}

INSTANTIATE_TEST_SUITE_P(AllSimdLevels, Embedding, testing::kAllSimdLevels, testing::SimdLevelName());

TEST(EmbeddingTable, InitIsUniformInDlrmRangeAndThreadIndependent) {
  const EmbeddingTable a = make_embedding_table(1000, 16, 77, 1);
  const EmbeddingTable b = make_embedding_table(1000, 16, 77, 3);
  const EmbeddingTable c = make_embedding_table(1000, 16, 78, 1);
  const float bound = std::sqrt(1.0f / 1000);
  double mean = 0;
  float lo = 1, hi = -1;
  for (float w : a.weights) {
    mean += w;
    lo = std::min(lo, w);
    hi = std::max(hi, w);
  }
  mean /= 16000;
  EXPECT_LE(hi, bound);
  EXPECT_GE(lo, -bound);
  EXPECT_GT(hi, 0.99f * bound);
  EXPECT_LT(lo, -0.99f * bound);
  EXPECT_NEAR(mean, 0.0, 0.01 * bound);
  EXPECT_EQ(std::memcmp(a.weights.data(), b.weights.data(), 16000 * sizeof(float)), 0);
  EXPECT_NE(std::memcmp(a.weights.data(), c.weights.data(), 16000 * sizeof(float)), 0);
  EXPECT_TRUE(a.adagrad_state.empty());
}

TEST(EmbeddingTable, RejectsBadShapes) {
  EXPECT_THROW(make_embedding_table(0, 16, 1, 1), ConfigError);
  EXPECT_THROW(make_embedding_table(10, 0, 1, 1), ConfigError);
  EXPECT_THROW(make_embedding_table((int64_t{1} << 31) + 1, 1, 1, 1), ConfigError);
}

}  // namespace
}  // namespace bluewhale
