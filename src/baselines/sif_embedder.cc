#include "baselines/sif_embedder.h"

#include <charconv>
#include <cmath>
#include <fstream>
#include <system_error>

#include "core/error.h"

namespace rwkv_embed::baselines {
namespace {

constexpr int kMaxPowerIterations = 100000;
constexpr double kPowerTolerance = 1e-10;

double Dot(const double* a, const double* b, int64_t d) {
  double s = 0;
  for (int64_t i = 0; i < d; ++i) s += a[i] * b[i];
  return s;
}

}  // namespace

double TopEigenvector(std::span<const double> c, int64_t d, std::vector<double>* u,
                      int* iterations) {
  // Start from the column with the largest diagonal entry, i.e. c applied to the basis vector
  // that c stretches most: non-zero whenever c is, and already weighted towards the top
  // eigenvector.
  int64_t k = 0;
  for (int64_t i = 1; i < d; ++i) {
    if (c[i * d + i] > c[k * d + k]) k = i;
  }
  if (!(c[k * d + k] > 0)) throw NumericError("power iteration: the matrix is zero");
  u->assign(c.begin() + k * d, c.begin() + (k + 1) * d);  // symmetric: column k = row k
  std::vector<double> w(d);
  double lambda = 0;
  for (int it = 1; it <= kMaxPowerIterations; ++it) {
    const double norm = std::sqrt(Dot(u->data(), u->data(), d));
    for (double& x : *u) x /= norm;
    for (int64_t i = 0; i < d; ++i) w[i] = Dot(c.data() + i * d, u->data(), d);
    lambda = Dot(u->data(), w.data(), d);  // Rayleigh quotient
    double residual = 0;
    for (int64_t i = 0; i < d; ++i)
      residual += (w[i] - lambda * (*u)[i]) * (w[i] - lambda * (*u)[i]);
    if (std::sqrt(residual) <= kPowerTolerance * lambda) {
      *iterations = it;
      int64_t largest = 0;
      for (int64_t i = 1; i < d; ++i) {
        if (std::fabs((*u)[i]) > std::fabs((*u)[largest])) largest = i;
      }
      if ((*u)[largest] < 0) {
        for (double& x : *u) x = -x;
      }
      return lambda;
    }
    u->swap(w);
  }
  throw NumericError("power iteration for the top singular vector did not converge in " +
                     std::to_string(kMaxPowerIterations) + " iterations (lambda " +
                     std::to_string(lambda) + ")");
}

SifEmbedder::SifEmbedder(std::shared_ptr<const WordVectors> vectors, SifOptions options)
    : WordVectorEmbedder(std::move(vectors), "SifEmbedder"), options_(std::move(options)) {
  if (!(options_.a > 0) || !std::isfinite(options_.a)) {
    throw UsageError("SIF weight parameter a must be positive and finite, got " +
                     std::to_string(options_.a));
  }
}

void SifEmbedder::LoadWordFrequencies(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  const std::string file = path.string();
  if (!in) throw IoError("cannot open word-frequency file " + file);
  counts_.clear();
  total_count_ = 0;
  std::string line;
  int64_t line_no = 0;
  while (std::getline(in, line)) {
    ++line_no;
    const auto fail = [&](const std::string& what) {
      return FormatError(file + ":" + std::to_string(line_no) + ": " + what);
    };
    std::string_view rest(line);
    if (!rest.empty() && rest.back() == '\r') rest.remove_suffix(1);
    const size_t sep = rest.find_first_of(" \t");
    if (sep == 0 || rest.empty()) throw fail("expected `word count`, found an empty word");
    if (sep == std::string_view::npos) throw fail("expected `word count`, found no count");
    std::string word(rest.substr(0, sep));
    std::string_view count_text = rest.substr(sep + 1);
    while (!count_text.empty() && (count_text.front() == ' ' || count_text.front() == '\t')) {
      count_text.remove_prefix(1);
    }
    while (!count_text.empty() && (count_text.back() == ' ' || count_text.back() == '\t')) {
      count_text.remove_suffix(1);
    }
    double count = 0;
    const auto [ptr, ec] =
        std::from_chars(count_text.data(), count_text.data() + count_text.size(), count);
    if (ec != std::errc() || ptr != count_text.data() + count_text.size() ||
        !std::isfinite(count) || count < 0) {
      throw fail("count of word '" + word + "' is not a non-negative number: '" +
                 std::string(count_text) + "'");
    }
    if (options_.lowercase) AsciiLowercase(&word);
    counts_[word] += count;
    total_count_ += count;
  }
  if (in.bad()) throw IoError("error reading word-frequency file " + file);
  if (!(total_count_ > 0)) throw FormatError(file + ": no positive word counts");
  frequency_source_ = file;
  fitted_ = false;  // u depends on the weights
}

double SifEmbedder::WordProbability(std::string_view word) const {
  const auto it = counts_.find(word);
  return it == counts_.end() || total_count_ == 0 ? 0.0 : it->second / total_count_;
}

double SifEmbedder::WordWeight(std::string_view word) const {
  return options_.a / (options_.a + WordProbability(word));
}

int64_t SifEmbedder::WeightedAverage(std::string_view sentence, std::vector<std::string>* tokens,
                                     double* out, int64_t* n_tokens) const {
  const int64_t dim = vectors_->dim();
  TokenizeWords(sentence, options_.tokenizer, options_.lowercase, tokens);
  std::fill(out, out + dim, 0.0);
  int64_t known = 0;
  for (const std::string& token : *tokens) {
    const float* v = vectors_->Find(token);
    if (v == nullptr) continue;
    ++known;
    const double weight = WordWeight(token);
    for (int64_t c = 0; c < dim; ++c) out[c] += weight * v[c];
  }
  *n_tokens = static_cast<int64_t>(tokens->size());
  if (known > 0) {
    const double inv = 1.0 / static_cast<double>(*n_tokens);  // |s| counts OOV tokens
    for (int64_t c = 0; c < dim; ++c) out[c] *= inv;
  }
  return known;
}

void SifEmbedder::Fit(std::span<const std::string> corpus_sentences) {
  if (corpus_sentences.empty()) throw DataError("SIF: the fitting corpus is empty");
  fitted_ = false;
  std::vector<std::string> tokens;
  if (frequency_source_.empty()) {
    counts_.clear();
    total_count_ = 0;
    for (const std::string& s : corpus_sentences) {
      TokenizeWords(s, options_.tokenizer, options_.lowercase, &tokens);
      for (std::string& t : tokens) counts_[std::move(t)] += 1;
      total_count_ += static_cast<double>(tokens.size());
    }
  }
  // C = X^T X, X = [n, dim] the corpus's SIF vectors; the right singular vectors of X are the
  // eigenvectors of C (sigma^2 = lambda).
  const int64_t dim = vectors_->dim();
  std::vector<double> c(dim * dim, 0.0), v(dim);
  int64_t n_tokens = 0;
  for (const std::string& s : corpus_sentences) {
    if (WeightedAverage(s, &tokens, v.data(), &n_tokens) == 0) continue;
    for (int64_t i = 0; i < dim; ++i) {
      for (int64_t j = i; j < dim; ++j) c[i * dim + j] += v[i] * v[j];
    }
  }
  for (int64_t i = 0; i < dim; ++i) {
    for (int64_t j = 0; j < i; ++j) c[i * dim + j] = c[j * dim + i];
  }
  bool any = false;
  for (int64_t i = 0; i < dim; ++i) any = any || c[i * dim + i] > 0;
  if (!any) {
    throw DataError("SIF: no sentence of the fitting corpus (" +
                    std::to_string(corpus_sentences.size()) + " sentences) has a known word");
  }
  sigma_ = std::sqrt(TopEigenvector(c, dim, &u_, &power_iterations_));
  fit_sentences_ = static_cast<int64_t>(corpus_sentences.size());
  fitted_ = true;
}

std::string SifEmbedder::Description() const {
  std::string s = "SIF (Arora et al. 2017), a=" + std::to_string(options_.a) + ", word vectors " +
                  DescribeWordVectors(*vectors_) + "; tokenizer " +
                  std::string(WordTokenizerName(options_.tokenizer)) + ", lowercase " +
                  (options_.lowercase ? "yes (ASCII)" : "no") + "; p(w) from ";
  s += frequency_source_.empty() ? "the fitting corpus" : frequency_source_;
  s += "; common component (1) from " + std::to_string(fit_sentences_) + " fitted sentences";
  return s;
}

EmbedResult SifEmbedder::Embed(std::span<const std::string> sentences,
                               const EmbedRequest& request) {
  if (!fitted_) throw UsageError("SIF embedder used before Fit (it needs a fitting corpus)");
  CheckSingleLayerRequest(request, Name());
  if (request.pooling != Pooling::kMean) {
    throw UsageError("embedder '" + Name() + "' is a weighted mean; pooling '" +
                     std::string(PoolingName(request.pooling)) + "' is not supported");
  }
  const int64_t n = static_cast<int64_t>(sentences.size());
  const int64_t dim = vectors_->dim();
  EmbedResult result;
  result.layers = {0};
  result.embeddings.emplace_back(n, dim);
  result.empty.assign(n, 0);
  Matrix& out = result.embeddings[0];
  stats_ = OovStats{};
  stats_.sentences = n;

  std::vector<std::string> tokens;
  std::vector<double> v(dim);
  for (int64_t i = 0; i < n; ++i) {
    int64_t n_tokens = 0;
    const int64_t known = WeightedAverage(sentences[i], &tokens, v.data(), &n_tokens);
    stats_.total_tokens += n_tokens;
    stats_.oov_tokens += n_tokens - known;
    if (known == 0) {
      result.empty[i] = 1;
      ++stats_.empty_sentences;
      continue;
    }
    const double projection = Dot(u_.data(), v.data(), dim);
    float* row = out.Row(i);
    for (int64_t c = 0; c < dim; ++c) row[c] = static_cast<float>(v[c] - projection * u_[c]);
    if (request.normalization == Normalization::kL2) NormalizeL2(row, dim);
  }
  result.tokens = stats_.total_tokens;
  return result;
}

}  // namespace rwkv_embed::baselines
