// SIF: Arora, Liang, Ma (2017), "A Simple but Tough-to-Beat Baseline for Sentence Embeddings",
// Algorithm 1:
//   v_s = (1/|s|) sum_{w in s} a / (a + p(w)) v_w                      (smooth inverse frequency)
//   u   = first right singular vector of X = [v_s for s in the fitting corpus]   (no centering:
//         the authors' code uses sklearn TruncatedSVD(n_components=1))
//   v_s <- v_s - u u^T v_s                                               (common component removal)
// |s| counts every token, an out-of-vocabulary word being a zero vector as in the averaged
// baseline. p(w) = count(w) / total count, from the fitting corpus (tokenised exactly like the
// sentences to embed) or from a `word count` frequency file (e.g. the paper's
// enwiki_vocab_min200.txt); a word with no count has p(w) = 0, weight 1, as in the authors' code.
// u is fitted on a corpus (the evaluator passes the train split, never the scored split) and then
// frozen: Embed only applies it.
#pragma once

#include <filesystem>
#include <memory>
#include <span>
#include <string>
#include <unordered_map>
#include <vector>

#include "baselines/word_embedder_common.h"
#include "baselines/word_tokenizer.h"
#include "baselines/word_vectors.h"
#include "core/embedder.h"

namespace rwkv_embed::baselines {

struct SifOptions {
  std::string name = "sif";
  WordTokenizer tokenizer = WordTokenizer::kWhitespace;
  bool lowercase = true;  // see AveragedWordOptions::lowercase
  double a = 1e-3;        // the paper's default weight parameter
};

class SifEmbedder : public WordVectorEmbedder {
 public:
  explicit SifEmbedder(std::shared_ptr<const WordVectors> vectors, SifOptions options = {});

  // Takes p(w) from a `word count` file (one pair per line, space or tab separated) instead of the
  // fitting corpus. Words are lower-cased when options.lowercase (counts of merged words add up).
  // Throws IoError / FormatError naming file:line. Call before Fit.
  void LoadWordFrequencies(const std::filesystem::path& path);

  // Estimates p(w) from `corpus_sentences` (unless a frequency file was loaded) and the common
  // component u from their SIF vectors. Throws DataError for an empty corpus or one without a
  // known word, NumericError if the power iteration does not converge.
  void Fit(std::span<const std::string> corpus_sentences);
  bool fitted() const { return fitted_; }

  std::string Name() const override { return options_.name; }
  std::string Description() const override;
  // UsageError before Fit, for layers other than 0, and for pooling other than mean (SIF is a
  // weighted mean by definition). Normalisation l2 is applied after the common component removal.
  EmbedResult Embed(std::span<const std::string> sentences, const EmbedRequest& request) override;

  double WordProbability(std::string_view word) const;             // p(w), 0 for an unseen word
  double WordWeight(std::string_view word) const;                  // a / (a + p(w))
  std::span<const double> common_component() const { return u_; }  // unit u, empty before Fit
  double common_singular_value() const { return sigma_; }          // sigma_1 of X
  int power_iterations() const { return power_iterations_; }
  int64_t fit_sentences() const { return fit_sentences_; }

 private:
  // Weighted average of one sentence into out[dim] (double); returns the number of known words.
  int64_t WeightedAverage(std::string_view sentence, std::vector<std::string>* tokens, double* out,
                          int64_t* n_tokens) const;

  SifOptions options_;
  std::unordered_map<std::string, double, TransparentStringHash, std::equal_to<>> counts_;
  double total_count_ = 0;
  std::string frequency_source_;  // file path, or empty when counted from the fitting corpus
  std::vector<double> u_;
  double sigma_ = 0;
  int power_iterations_ = 0;
  int64_t fit_sentences_ = 0;
  bool fitted_ = false;
};

// The unit eigenvector of the largest eigenvalue of the symmetric positive semi-definite matrix
// c ([d, d], row-major), by power iteration in double, stopping when ||c u - lambda u|| <=
// 1e-10 * lambda. Its sign is fixed so that the component of largest magnitude is positive.
// Returns lambda; throws NumericError when c is zero or the iteration does not converge.
double TopEigenvector(std::span<const double> c, int64_t d, std::vector<double>* u,
                      int* iterations);

}  // namespace rwkv_embed::baselines
