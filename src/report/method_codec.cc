#include "report/method_codec.h"

#include <string>

#include "core/error.h"

namespace rwkv_embed::report {
namespace {

using nlohmann::json;

json OptionalInt(const std::optional<int>& v) { return v ? json(*v) : json(nullptr); }
template <typename T>
std::optional<T> ReadOptional(const json& j) {
  return j.is_null() ? std::nullopt : std::optional<T>(j.get<T>());
}

json CiToJson(const metrics::ConfidenceInterval& c) {
  return {{"estimate", c.estimate},
          {"lo", c.lo},
          {"hi", c.hi},
          {"level", c.level},
          {"resamples", c.resamples},
          {"undefined", c.undefined}};
}
metrics::ConfidenceInterval CiFromJson(const json& j) {
  metrics::ConfidenceInterval c;
  c.estimate = j.at("estimate").get<double>();
  c.lo = j.at("lo").get<double>();
  c.hi = j.at("hi").get<double>();
  c.level = j.at("level").get<double>();
  c.resamples = j.at("resamples").get<int64_t>();
  c.undefined = j.at("undefined").get<int64_t>();
  return c;
}

json ClassificationToJson(const std::optional<metrics::Classification>& c) {
  if (!c) return nullptr;
  return {{"threshold", c->threshold},
          {"accuracy", c->accuracy},
          {"precision", c->precision},
          {"recall", c->recall},
          {"f1", c->f1},
          {"tp", c->tp},
          {"fp", c->fp},
          {"tn", c->tn},
          {"fn", c->fn}};
}
std::optional<metrics::Classification> ClassificationFromJson(const json& j) {
  if (j.is_null()) return std::nullopt;
  metrics::Classification c;
  c.threshold = j.at("threshold").get<double>();
  c.accuracy = j.at("accuracy").get<double>();
  c.precision = j.at("precision").get<double>();
  c.recall = j.at("recall").get<double>();
  c.f1 = j.at("f1").get<double>();
  c.tp = j.at("tp").get<int64_t>();
  c.fp = j.at("fp").get<int64_t>();
  c.tn = j.at("tn").get<int64_t>();
  c.fn = j.at("fn").get<int64_t>();
  return c;
}

json LayerToJson(const eval::LayerResult& l) {
  return {{"layer", l.layer},
          {"hf_layer", OptionalInt(l.hf_layer)},
          {"no_hf_reason", l.no_hf_reason},
          {"label", l.label},
          {"cosines", l.cosines},
          {"undefined_cosines", l.undefined_cosines},
          {"spearman", l.spearman},
          {"pearson", l.pearson},
          {"spearman_ci", CiToJson(l.spearman_ci)},
          {"roc_auc", l.roc_auc},
          {"ap", l.ap},
          {"classification", ClassificationToJson(l.classification)},
          {"threshold_fit_accuracy", l.threshold_fit_accuracy}};
}
eval::LayerResult LayerFromJson(const json& j) {
  eval::LayerResult l;
  l.layer = j.at("layer").get<int>();
  l.hf_layer = ReadOptional<int>(j.at("hf_layer"));
  l.no_hf_reason = j.at("no_hf_reason").get<std::string>();
  l.label = j.at("label").get<std::string>();
  l.cosines = j.at("cosines").get<std::vector<double>>();
  l.undefined_cosines = j.at("undefined_cosines").get<int64_t>();
  l.spearman = j.at("spearman").get<double>();
  l.pearson = j.at("pearson").get<double>();
  l.spearman_ci = CiFromJson(j.at("spearman_ci"));
  l.roc_auc = j.at("roc_auc").get<double>();
  l.ap = j.at("ap").get<double>();
  l.classification = ClassificationFromJson(j.at("classification"));
  l.threshold_fit_accuracy = j.at("threshold_fit_accuracy").get<double>();
  return l;
}

json SplitToJson(const eval::SplitResult& s) {
  json layers = json::array();
  for (const eval::LayerResult& l : s.layers) layers.push_back(LayerToJson(l));
  return {{"task", s.task},
          {"split", s.split},
          {"source", s.source},
          {"subset_seed", s.subset_seed ? json(*s.subset_seed) : json(nullptr)},
          {"n_pairs", s.n_pairs},
          {"n_sentences", s.n_sentences},
          {"empty_sentences", s.empty_sentences},
          {"tokens", s.tokens},
          {"embed_seconds", s.embed_seconds},
          {"peak_rss_kib", s.peak_rss_kib},
          {"binary", s.binary},
          {"labels", s.labels},
          {"threshold_source", s.threshold_source},
          {"threshold_pairs", s.threshold_pairs},
          {"layers", layers}};
}
eval::SplitResult SplitFromJson(const json& j) {
  eval::SplitResult s;
  s.task = j.at("task").get<std::string>();
  s.split = j.at("split").get<std::string>();
  s.source = j.at("source").get<std::string>();
  s.subset_seed = ReadOptional<uint64_t>(j.at("subset_seed"));
  s.n_pairs = j.at("n_pairs").get<int64_t>();
  s.n_sentences = j.at("n_sentences").get<int64_t>();
  s.empty_sentences = j.at("empty_sentences").get<int64_t>();
  s.tokens = j.at("tokens").get<int64_t>();
  s.embed_seconds = j.at("embed_seconds").get<double>();
  s.peak_rss_kib = j.at("peak_rss_kib").get<int64_t>();
  s.binary = j.at("binary").get<bool>();
  s.labels = j.at("labels").get<std::vector<double>>();
  s.threshold_source = j.at("threshold_source").get<std::string>();
  s.threshold_pairs = j.at("threshold_pairs").get<int64_t>();
  for (const json& l : j.at("layers")) s.layers.push_back(LayerFromJson(l));
  return s;
}

json SpreadToJson(const eval::SubsetSpread& s) {
  return {{"layer", s.layer},
          {"seeds", s.seeds},
          {"spearman", s.spearman},
          {"summary",
           {{"n", s.summary.n},
            {"mean", s.summary.mean},
            {"sd", s.summary.sd},
            {"min", s.summary.min},
            {"max", s.summary.max}}}};
}
eval::SubsetSpread SpreadFromJson(const json& j) {
  eval::SubsetSpread s;
  s.layer = j.at("layer").get<int>();
  s.seeds = j.at("seeds").get<std::vector<uint64_t>>();
  s.spearman = j.at("spearman").get<std::vector<double>>();
  const json& m = j.at("summary");
  s.summary.n = m.at("n").get<int64_t>();
  s.summary.mean = m.at("mean").get<double>();
  s.summary.sd = m.at("sd").get<double>();
  s.summary.min = m.at("min").get<double>();
  s.summary.max = m.at("max").get<double>();
  return s;
}

}  // namespace

json MethodResultToJson(const eval::MethodResult& m) {
  json info = json::array(), splits = json::array(), spread = json::array();
  for (const LayerInfo& i : m.layer_info) {
    info.push_back({{"layer", i.layer},
                    {"label", i.label},
                    {"hf_index", OptionalInt(i.hf_index)},
                    {"no_hf_reason", i.no_hf_reason}});
  }
  for (const eval::SplitResult& s : m.splits) splits.push_back(SplitToJson(s));
  for (const eval::SubsetSpread& s : m.spread) spread.push_back(SpreadToJson(s));
  json token_weights = json::array();
  for (const eval::MethodResult::TokenWeights& w : m.token_weights) {
    token_weights.push_back({{"layer", w.layer}, {"tokens", w.tokens}, {"weights", w.weights}});
  }
  return {{"method", m.method},
          {"description", m.description},
          {"layer_info", info},
          {"control_of", m.control_of},
          {"pooling_of", m.pooling_of},
          {"fitted_on", m.fitted_on},
          {"token_weights", token_weights},
          {"load_seconds", m.load_seconds},
          {"peak_rss_kib", m.peak_rss_kib},
          {"peak_rss_isolated", m.peak_rss_isolated},
          {"splits", splits},
          {"spread_split", m.spread_split},
          {"spread", spread}};
}

eval::MethodResult MethodResultFromJson(const json& j) {
  try {
    eval::MethodResult m;
    m.method = j.at("method").get<std::string>();
    m.description = j.at("description").get<std::string>();
    for (const json& i : j.at("layer_info")) {
      LayerInfo info;
      info.layer = i.at("layer").get<int>();
      info.label = i.at("label").get<std::string>();
      info.hf_index = ReadOptional<int>(i.at("hf_index"));
      info.no_hf_reason = i.at("no_hf_reason").get<std::string>();
      m.layer_info.push_back(std::move(info));
    }
    m.control_of = j.at("control_of").get<std::string>();
    m.pooling_of = j.at("pooling_of").get<std::string>();
    m.fitted_on = j.at("fitted_on").get<std::string>();
    for (const json& w : j.at("token_weights")) {
      m.token_weights.push_back({w.at("layer").get<int>(),
                                 w.at("tokens").get<std::vector<std::string>>(),
                                 w.at("weights").get<std::vector<double>>()});
    }
    m.load_seconds = j.at("load_seconds").get<double>();
    m.peak_rss_kib = j.at("peak_rss_kib").get<int64_t>();
    m.peak_rss_isolated = j.at("peak_rss_isolated").get<bool>();
    for (const json& s : j.at("splits")) m.splits.push_back(SplitFromJson(s));
    m.spread_split = j.at("spread_split").get<std::string>();
    for (const json& s : j.at("spread")) m.spread.push_back(SpreadFromJson(s));
    return m;
  } catch (const json::exception& e) {
    throw FormatError(std::string("method result: ") + e.what());
  }
}

std::vector<uint8_t> EncodeCbor(const json& j) { return json::to_cbor(j); }

json DecodeCbor(const std::vector<uint8_t>& bytes) {
  try {
    return json::from_cbor(bytes);
  } catch (const json::exception& e) {
    throw FormatError(std::string("method results (CBOR): ") + e.what());
  }
}

}  // namespace rwkv_embed::report
