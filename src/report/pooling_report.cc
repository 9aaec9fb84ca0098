#include "report/pooling_report.h"

#include <algorithm>
#include <cctype>
#include <cmath>
#include <cstdio>
#include <sstream>

namespace rwkv_embed::report {
namespace {

std::string Num(double v, int digits = 4) {
  if (!std::isfinite(v)) return "n/a";
  char buf[64];
  std::snprintf(buf, sizeof(buf), "%.*f", digits, v);
  return buf;
}

std::string Difference(const eval::Comparison* c) {
  if (c == nullptr) return "—";
  return Num(c->test.difference) + " [" + Num(c->test.lo, 3) + ", " + Num(c->test.hi, 3) + "], p " +
         Num(c->test.p_value, 3);
}

const eval::Comparison* Find(const TaskResults& t, const std::string& split,
                             const std::string& kind, const std::string& a, const std::string& b) {
  for (const eval::Comparison& c : t.comparisons) {
    if (c.split == split && c.kind == kind && c.method_a == a && c.method_b == b) return &c;
  }
  return nullptr;
}

// English function words: attention weight on them vs on content words.
bool IsFunctionWord(const std::string& word) {
  static const char* const kWords[] = {
      "the",  "a",    "an",    "of",  "to",   "in",   "on",  "at",   "by",    "for",
      "with", "and",  "or",    "but", "is",   "are",  "was", "were", "be",    "been",
      "has",  "have", "had",   "it",  "its",  "he",   "she", "they", "we",    "i",
      "that", "this", "which", "who", "as",   "from", "not", "will", "would", "said",
      "his",  "her",  "their", "s",   "than", "also", "if",  "into", "about"};
  std::string w;
  for (char c : word) {
    if (std::isalpha(static_cast<unsigned char>(c))) w += static_cast<char>(std::tolower(c));
  }
  for (const char* f : kWords) {
    if (w == f) return true;
  }
  return false;
}

bool IsWordToken(const std::string& token) {
  for (char c : token) {
    if (std::isalpha(static_cast<unsigned char>(c))) return true;
  }
  return false;
}

std::vector<const eval::MethodResult*> PoolingMethods(const TaskResults& t) {
  std::vector<const eval::MethodResult*> out;
  for (const eval::MethodResult& m : t.methods) {
    if (!m.pooling_of.empty()) out.push_back(&m);
  }
  return out;
}

// The split the section reports: dev when scored, else the first scored split.
std::string ReportSplit(const TaskResults& t) {
  for (const PairDataset& d : t.samples) {
    if (d.split == "dev") return "dev";
  }
  return t.samples.empty() ? "" : t.samples.front().split;
}

}  // namespace

const eval::LayerResult* BestLayer(const eval::MethodResult& method, const std::string& split) {
  const eval::SplitResult* s = method.FindSplit(split);
  if (s == nullptr) return nullptr;
  const eval::LayerResult* best = nullptr;
  for (const eval::LayerResult& l : s->layers) {
    if (std::isfinite(l.spearman) && (best == nullptr || l.spearman > best->spearman)) best = &l;
  }
  return best;
}

std::vector<eval::Comparison> PoolingComparisons(const TaskResults& task,
                                                 const metrics::ResampleOptions& options) {
  std::vector<eval::Comparison> out;
  const std::vector<const eval::MethodResult*> poolings = PoolingMethods(task);
  if (poolings.empty()) return out;
  const eval::MethodResult* glove = task.FindMethod("glove");
  std::vector<std::string> bases;
  for (const eval::MethodResult* p : poolings) {
    if (std::find(bases.begin(), bases.end(), p->pooling_of) == bases.end()) {
      bases.push_back(p->pooling_of);
    }
  }
  for (const eval::SplitResult& s : poolings.front()->splits) {
    auto compare = [&](const eval::MethodResult& a, const eval::MethodResult& b,
                       const std::string& kind) {
      const eval::LayerResult* la = BestLayer(a, s.split);
      const eval::LayerResult* lb = BestLayer(b, s.split);
      if (la == nullptr || lb == nullptr) return;
      out.push_back(eval::CompareLayers(a, la->layer, b, lb->layer, s.split, kind, options));
    };
    for (const std::string& base : bases) {
      const eval::MethodResult* model = task.FindMethod(base);
      if (model != nullptr && glove != nullptr) compare(*model, *glove, "pooling_vs_glove");
    }
    for (const eval::MethodResult* p : poolings) {
      if (const eval::MethodResult* model = task.FindMethod(p->pooling_of)) {
        compare(*p, *model, "pooling_vs_mean");
      }
      if (glove != nullptr) compare(*p, *glove, "pooling_vs_glove");
    }
  }
  return out;
}

void AddPoolingMethodJson(const eval::MethodResult& method, nlohmann::json* entry) {
  (*entry)["pooling_of"] = method.pooling_of;
  (*entry)["fitted_on"] =
      method.fitted_on.empty() ? nlohmann::json(nullptr) : nlohmann::json(method.fitted_on);
  if (method.token_weights.empty()) return;
  nlohmann::json tw = nlohmann::json::array();
  for (const eval::MethodResult::TokenWeights& w : method.token_weights) {
    tw.push_back({{"layer", w.layer}, {"tokens", w.tokens}, {"weights", w.weights}});
  }
  (*entry)["token_weights"] = tw;
}

TaskResults WithoutPoolingMethods(const TaskResults& task) {
  TaskResults t = task;
  std::erase_if(t.methods, [](const eval::MethodResult& m) { return !m.pooling_of.empty(); });
  return t;
}

std::optional<TaskResults> PoolingMethodsOnly(const TaskResults& task) {
  TaskResults t = task;
  t.comparisons.clear();
  std::vector<std::string> keep = {"glove"};
  for (const eval::MethodResult& m : task.methods) {
    if (!m.pooling_of.empty()) keep.push_back(m.pooling_of);
  }
  if (keep.size() == 1) return std::nullopt;
  std::erase_if(t.methods, [&](const eval::MethodResult& m) {
    return m.pooling_of.empty() && std::find(keep.begin(), keep.end(), m.method) == keep.end();
  });
  return t;
}

std::string PoolingComparisonSection(const TaskResults& t) {
  const std::vector<const eval::MethodResult*> poolings = PoolingMethods(t);
  const std::string split = ReportSplit(t);
  if (poolings.empty() || split.empty()) return "";
  const eval::MethodResult* glove = t.FindMethod("glove");
  std::ostringstream md;
  md << "\n## " << t.task << " " << split << ": pooling beyond the mean\n\n";
  md << "Each method at its best layer on " << split
     << " (chosen on the scored split: descriptive, optimistic for layered methods), with paired "
        "bootstrap tests of the Spearman difference against mean pooling (the model's best "
        "layer) and against averaged GloVe. Fitted methods were fitted on the column \"fitted "
        "on\" only, never on a scored split. Costs: embed seconds of the scored split, fit "
        "seconds (the method's load time) and peak RSS with the model resident.\n\n";
  md << "| method | best layer | Spearman [CI] | − mean pooling [CI], p | − GloVe [CI], p | "
        "embed s | fit s | peak RSS MiB | fitted on |\n"
        "|---|---|---|---|---|---|---|---|---|\n";
  std::vector<const eval::MethodResult*> rows;
  for (const eval::MethodResult* p : poolings) {
    const eval::MethodResult* base = t.FindMethod(p->pooling_of);
    if (base != nullptr && std::find(rows.begin(), rows.end(), base) == rows.end()) {
      rows.push_back(base);
    }
    rows.push_back(p);
  }
  // The answer: the RWKV system with the largest difference to GloVe.
  const eval::Comparison* best_vs_glove = nullptr;
  for (const eval::MethodResult* m : rows) {
    const eval::LayerResult* best = BestLayer(*m, split);
    const eval::SplitResult* s = m->FindSplit(split);
    if (best == nullptr || s == nullptr) continue;
    const eval::Comparison* vs_mean =
        m->pooling_of.empty() ? nullptr
                              : Find(t, split, "pooling_vs_mean", m->method, m->pooling_of);
    const eval::Comparison* vs_glove =
        glove ? Find(t, split, "pooling_vs_glove", m->method, "glove") : nullptr;
    if (vs_glove != nullptr &&
        (best_vs_glove == nullptr || vs_glove->test.difference > best_vs_glove->test.difference)) {
      best_vs_glove = vs_glove;
    }
    const std::string ci =
        std::isfinite(best->spearman_ci.lo)
            ? " [" + Num(best->spearman_ci.lo, 3) + ", " + Num(best->spearman_ci.hi, 3) + "]"
            : "";
    md << "| " << m->method << " | " << best->layer << " (" << best->label << ") | "
       << Num(best->spearman) << ci << " | "
       << (m->pooling_of.empty() ? "(reference)" : Difference(vs_mean)) << " | "
       << Difference(vs_glove) << " | " << Num(s->embed_seconds, 3) << " | "
       << (m->pooling_of.empty() ? "—" : Num(m->load_seconds, 3)) << " | "
       << (s->peak_rss_kib < 0 ? "n/a" : Num(s->peak_rss_kib / 1024.0, 1)) << " | "
       << (m->fitted_on.empty() ? "nothing" : m->fitted_on) << " |\n";
  }
  if (glove != nullptr) {
    const eval::LayerResult* g = BestLayer(*glove, split);
    md << "\n**Does any RWKV method beat averaged GloVe on " << t.task << " " << split << "?** ";
    if (best_vs_glove == nullptr || g == nullptr) {
      md << "Not tested (no paired tests in this run).\n";
    } else {
      const bool beats = best_vs_glove->test.lo > 0;
      const bool worse = best_vs_glove->test.hi < 0;
      md << (beats ? "Yes" : "No") << ": the best RWKV system, " << best_vs_glove->method_a
         << " layer " << best_vs_glove->layer_a << " (Spearman "
         << Num(best_vs_glove->test.estimate_a) << " vs GloVe "
         << Num(best_vs_glove->test.estimate_b) << "), differs from GloVe by "
         << Num(best_vs_glove->test.difference) << " (95% paired bootstrap CI "
         << Num(best_vs_glove->test.lo, 3) << " to " << Num(best_vs_glove->test.hi, 3) << ")"
         << (beats   ? ", an interval above zero"
             : worse ? ": GloVe is better, the interval lies below zero"
                     : ": the interval includes zero")
         << "; its layer and method were picked on this split, so the difference is, if "
            "anything, flattering to RWKV.\n";
    }
  }
  for (const eval::MethodResult* m : poolings) {
    if (m->token_weights.empty()) continue;
    md << "\n**" << m->method << ": token weights** (layer " << m->token_weights.front().layer
       << ", first sentences of " << split << "; weight in parentheses). ";
    // Attention weight on content and function words, beside what uniform weights would give.
    double content = 0, function = 0, uniform_content = 0, uniform_function = 0;
    for (const auto& tw : m->token_weights) {
      for (size_t i = 0; i < tw.tokens.size(); ++i) {
        if (!IsWordToken(tw.tokens[i])) continue;
        const bool f = IsFunctionWord(tw.tokens[i]);
        (f ? function : content) += tw.weights[i];
        (f ? uniform_function : uniform_content) += 1.0 / static_cast<double>(tw.tokens.size());
      }
    }
    const double n = static_cast<double>(m->token_weights.size());
    md << "Per sentence, on average, weight on content-word tokens " << Num(content / n, 3)
       << " (uniform weights: " << Num(uniform_content / n, 3) << "), on function words "
       << Num(function / n, 3) << " (uniform: " << Num(uniform_function / n, 3)
       << "); the rest on punctuation and numbers.\n\n";
    for (const auto& tw : m->token_weights) {
      md << "- ";
      for (size_t i = 0; i < tw.tokens.size(); ++i) {
        std::string tok;
        for (char c : tw.tokens[i]) tok += (c == '|' || c == '`' || c == '\n') ? ' ' : c;
        md << "`" << tok << "`(" << Num(tw.weights[i], 2) << ") ";
      }
      md << "\n";
    }
  }
  md << "\n";
  return md.str();
}

}  // namespace rwkv_embed::report
