// Evaluation metrics for binary click prediction: exact ROC AUC, log loss, accuracy.
//
// All functions take n predictions and n labels as parallel arrays (not owned, only read). Labels must be
// exactly 0 or 1; anything else (including NaN) throws InputError naming the row and the value. Scores
// and probabilities must not be NaN (InputError). n == 0 gives NaN.
#pragma once

#include <cstdint>

namespace bluewhale {

// Exact area under the ROC curve: the probability that a random positive scores higher than a random
// negative, counting equal scores as 1/2 (the Mann-Whitney statistic). scores (n) are any finite or
// infinite floats; -0.0 and +0.0 tie. Returns NaN when either class is absent, since AUC is undefined
// there. Cost: O(n) memory (16 bytes per row of scratch) and an LSD radix sort on the float bits,
// parallelised over `threads` (<= 0: all available); the result does not depend on `threads`.
double roc_auc(const float* scores, const float* labels, int64_t n, int threads = 1);

// Mean binary cross-entropy in nats: -mean(y log p + (1 - y) log(1 - p)), with each probability clamped
// to [eps, 1 - eps] so that a confident wrong prediction costs a finite amount. probs (n) in [0, 1].
double log_loss(const float* probs, const float* labels, int64_t n, double eps = 1e-7);

// Fraction of rows whose predicted class (1 when prob >= threshold, else 0) equals the label.
double accuracy(const float* probs, const float* labels, int64_t n, double threshold = 0.5);

}  // namespace bluewhale
