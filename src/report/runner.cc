#include "report/runner.h"

#include <omp.h>
#include <unistd.h>

#include <algorithm>
#include <charconv>
#include <chrono>
#include <ctime>
#include <memory>
#include <optional>

#include "baselines/averaged_word_embedder.h"
#include "baselines/sif_embedder.h"
#include "baselines/word_vectors.h"
#include "core/error.h"
#include "core/timing.h"
#include "eval/resources.h"
#include "methods/attention_pooling.h"
#include "methods/method_spec.h"
#include "model/embedding_rwkv/embedding_rwkv.h"
#include "model/embedding_rwkv/embedding_rwkv_embedder.h"
#include "model/layer_spec.h"
#include "model/rwkv6/rwkv6.h"
#include "model/rwkv6/rwkv6_random.h"
#include "model/rwkv7/rwkv7.h"
#include "model/rwkv7/rwkv7_random.h"
#include "model/rwkv_embedder.h"
#include "report/method_codec.h"
#include "report/plots.h"
#include "report/pooling_report.h"

namespace rwkv_embed::report {
namespace {

using Clock = std::chrono::steady_clock;
using nlohmann::json;

struct TaskData {
  std::vector<PairDataset> splits;
  std::optional<PairDataset> fit;
};

void Log(const RunOptions& o, const std::string& line) {
  if (o.log) o.log(line);
}

// Runs one method over every task; `method` names the result (e.g. "random-control").
void RunMethod(Embedder& embedder, const std::string& method, double load_seconds, bool isolated,
               const std::vector<int>& layers, const RunOptions& o,
               const std::vector<TaskData>& data, std::vector<TaskResults>* tasks) {
  eval::EvalOptions eo;
  eo.request.layers = layers;
  eo.request.pooling = o.pooling;
  eo.request.normalization = o.normalization;
  eo.bootstrap = o.bootstrap;
  eo.seed = o.seed;
  eo.level = o.level;
  eo.undefined_cosine = o.undefined_cosine;
  eo.subset_seeds = o.subset_seeds;
  eo.subset_size = o.subset_size;
  for (size_t t = 0; t < data.size(); ++t) {
    const auto t0 = Clock::now();
    eval::EvalInputs in{data[t].splits, data[t].fit};
    eval::MethodResult r = eval::EvaluateMethod(embedder, in, eo);
    r.method = method;
    r.load_seconds = load_seconds;
    r.peak_rss_isolated = isolated;
    Log(o, method + " on " + (*tasks)[t].task + ": " +
               std::to_string(SecondsSince(t0)).substr(0, 6) + " s, peak RSS " +
               std::to_string(r.peak_rss_kib / 1024) + " MiB");
    (*tasks)[t].methods.push_back(std::move(r));
  }
}

// Method-name suffixes for several models: the folder (or checkpoint file) name, made unique.
std::vector<std::string> ModelNames(const std::vector<std::filesystem::path>& models) {
  std::vector<std::string> names;
  for (const std::filesystem::path& p : models) {
    const std::filesystem::path n = p.lexically_normal();
    std::string name =
        n.has_filename() ? n.filename().string() : n.parent_path().filename().string();
    const std::string base = name;
    for (int k = 2; std::find(names.begin(), names.end(), name) != names.end(); ++k) {
      name = base + "#" + std::to_string(k);
    }
    names.push_back(name);
  }
  return names;
}

// The World vocabulary a model was loaded with when none was given: the one in its folder or
// beside its checkpoint file (RwkvEmbedder::Load's default), where there is one.
std::filesystem::path DefaultVocabFor(const std::filesystem::path& model) {
  const std::filesystem::path folder =
      std::filesystem::is_directory(model) ? model : model.parent_path();
  const std::filesystem::path vocab = folder / kWorldVocabFile;
  return std::filesystem::exists(vocab) ? vocab : std::filesystem::path();
}

// Writes a random-weight model of `model`'s architecture and shape (RWKV-7: also its naming, so
// that the GroupNorm eps is the same) into a folder.
std::function<void(const std::filesystem::path&)> RandomControlWriter(const SequenceModel& model,
                                                                      uint64_t seed) {
  if (const auto* r6 = dynamic_cast<const Rwkv6Model*>(&model)) {
    return [config = r6->config(), seed](const std::filesystem::path& dir) {
      RandomModelOptions rm;
      rm.seed = seed;
      rm.force = true;  // this run's own scratch folder (its pid in the name)
      WriteRandomModel(config, rm, dir);
    };
  }
  if (const auto* r7 = dynamic_cast<const Rwkv7Model*>(&model)) {
    return [config = r7->config(), naming = r7->weights().naming(),
            seed](const std::filesystem::path& dir) {
      Rwkv7RandomOptions rm;
      rm.seed = seed;
      rm.naming = naming;
      rm.force = true;
      WriteRandomRwkv7Model(config, rm, dir);
    };
  }
  throw UsageError("--random-control: no random-weight writer for architecture " +
                   std::string(model.Architecture()));
}

// Attention weights of the first few sentences of the first scored split, at the best layer.
void AddTokenWeights(methods::AttentionPoolEmbedder& attention, const PairDataset& split,
                     eval::MethodResult* r) {
  const eval::LayerResult* best = BestLayer(*r, split.split);
  if (best == nullptr) return;
  for (size_t i = 0; i < std::min<size_t>(3, split.pairs.size()); ++i) {
    eval::MethodResult::TokenWeights tw;
    tw.layer = best->layer;
    for (const methods::TokenWeight& w :
         attention.TokenWeights(split.pairs[i].sentence1, best->layer)) {
      tw.tokens.push_back(w.token);
      tw.weights.push_back(w.weight);
    }
    r->token_weights.push_back(std::move(tw));
  }
}

// Each pooling method of o.poolings on `model` (method `base`), task by task: built, fitted on
// the task's fit split (its time is the method's load_seconds), then scored like any method.
void RunPoolingMethods(const std::shared_ptr<RwkvEmbedder>& model, const std::string& base,
                       const std::vector<int>& layers, const RunOptions& o,
                       const std::vector<TaskData>& data, std::vector<TaskResults>* tasks) {
  methods::MethodContext c;
  c.model = model;
  c.layers = layers;
  c.templates = o.templates;
  c.train.seed = o.seed;
  for (const std::string& spec : o.poolings) {
    for (size_t t = 0; t < data.size(); ++t) {
      const bool isolated = eval::ResetPeakRss();
      const auto t0 = Clock::now();
      const std::shared_ptr<Embedder> e = methods::MakePoolingMethod(spec, c);
      std::vector<int> method_layers;
      const std::vector<int> has = e->Layers();
      for (int l : layers) {
        if (std::find(has.begin(), has.end(), l) != has.end()) method_layers.push_back(l);
      }
      const EmbedRequest request{method_layers, o.pooling, o.normalization};
      std::string fitted;
      if (methods::IsFittedMethod(spec)) {
        if (!data[t].fit) {
          throw UsageError("pooling method '" + spec + "' is fitted on a fitting split; " +
                           (*tasks)[t].task + " has none (--fit-split train)");
        }
        Log(o, base + "/" + spec + ": fitting on " + data[t].fit->task + " " + data[t].fit->split);
        fitted = methods::FitIfNeeded(*e, methods::FitDataOf(*data[t].fit), request);
      }
      std::vector<TaskData> one = {data[t]};
      std::vector<TaskResults> res(1);
      res[0].task = (*tasks)[t].task;
      RunMethod(*e, base + "/" + spec, SecondsSince(t0), isolated, method_layers, o, one, &res);
      eval::MethodResult& r = res[0].methods[0];
      r.pooling_of = base;
      r.fitted_on = fitted;
      if (!fitted.empty()) r.description += "; fitted: " + fitted;
      if (auto* attention = dynamic_cast<methods::AttentionPoolEmbedder*>(e.get())) {
        AddTokenWeights(*attention, data[t].splits.front(), &r);
      }
      (*tasks)[t].methods.push_back(std::move(r));
    }
  }
}

// Each of o.heads on an EmbeddingRWKV checkpoint (nothing for other models): loaded with the
// head and o.eos_mode, then scored like a one-layer method "<method>/head-<name>".
void RunTaskHeads(const std::filesystem::path& path, const std::string& method,
                  const RwkvEmbedderOptions& ro, const RunOptions& o,
                  const std::vector<TaskData>& data, std::vector<TaskResults>* tasks) {
  if (o.heads.empty() || !HasEmbeddingRwkvHeads(path)) return;
  for (const std::string& name : o.heads) {
    EmbeddingRwkvOptions eo;
    eo.head = ParseEmbeddingRwkvHead(name);
    eo.eos_mode = ParseEosMode(o.eos_mode);
    const bool isolated = eval::ResetPeakRss();
    const auto t0 = Clock::now();
    auto e = EmbeddingRwkvEmbedder::Load(path, o.vocab, ro, eo);
    ApplyAblations(o.ablations, e->backbone());
    const std::string head_method = method + "/head-" + name;
    Log(o, head_method + ": EmbeddingRWKV " + name + " head, eos mode " + o.eos_mode);
    RunMethod(*e, head_method, SecondsSince(t0), isolated, e->Layers(), o, data, tasks);
    for (TaskResults& t : *tasks) {
      t.methods.back().description +=
          "; EmbeddingRWKV task head '" + name + "', eos mode " + o.eos_mode;
    }
  }
}

// The number of methods of each task so far: where a group's methods start (TakeGroup).
std::vector<size_t> MethodCounts(const std::vector<TaskResults>& tasks) {
  std::vector<size_t> counts;
  for (const TaskResults& t : tasks) counts.push_back(t.methods.size());
  return counts;
}

// Moves the methods every task gained since MethodCounts gave `counts` into group `g`.
MethodGroup TakeGroup(int g, const std::vector<size_t>& counts, std::vector<TaskResults>* tasks) {
  MethodGroup group;
  group.group = g;
  for (size_t t = 0; t < tasks->size(); ++t) {
    auto& methods = (*tasks)[t].methods;
    const auto first = methods.begin() + static_cast<std::ptrdiff_t>(counts[t]);
    group.tasks.emplace_back(std::make_move_iterator(first),
                             std::make_move_iterator(methods.end()));
    methods.erase(first, methods.end());
  }
  return group;
}

// The groups' numbers a run has: 0 with word vectors, 1 + i for model i.
std::vector<int> GroupNumbers(const RunOptions& o) {
  std::vector<int> numbers;
  if (!o.glove.empty()) numbers.push_back(0);
  for (size_t mi = 0; mi < o.models.size(); ++mi) numbers.push_back(1 + static_cast<int>(mi));
  return numbers;
}

// A group as a sweep unit: its results (every method of every task, method_codec) and what it
// cost.
SweepUnit GroupToUnit(const MethodGroup& g) {
  SweepUnit u;
  u.unit = g.group;
  u.name = g.name;
  u.seconds = g.seconds;
  json tasks = json::array();
  for (const auto& methods : g.tasks) {
    json list = json::array();
    for (const eval::MethodResult& m : methods) {
      list.push_back(MethodResultToJson(m));
      for (const eval::SplitResult& s : m.splits) {
        u.tokens += s.tokens;
        u.embed_seconds += s.embed_seconds;
      }
    }
    tasks.push_back(list);
  }
  u.result = {{"tasks", tasks},
              {"vectors_note", g.vectors_note},
              {"model_note", g.model_note},
              {"files", g.files}};
  return u;
}

// The group a unit gathered from another process carries; FormatError unless it has every task.
MethodGroup GroupFromUnit(const SweepUnit& u, size_t tasks) {
  MethodGroup g;
  try {
    g.group = u.unit;
    g.name = u.name;
    g.seconds = u.seconds;
    for (const json& list : u.result.at("tasks")) {
      g.tasks.emplace_back();
      for (const json& m : list) g.tasks.back().push_back(MethodResultFromJson(m));
    }
    g.vectors_note = u.result.at("vectors_note").get<std::string>();
    g.model_note = u.result.at("model_note").get<std::string>();
    g.files = u.result.at("files");
  } catch (const json::exception& e) {
    throw FormatError("gathered method group " + std::to_string(u.unit) + ": " + e.what());
  }
  if (g.tasks.size() != tasks) {
    throw FormatError("gathered method group " + std::to_string(u.unit) + " has " +
                      std::to_string(g.tasks.size()) + " tasks, the run " + std::to_string(tasks));
  }
  return g;
}

// Every group of the run, this process's and the others' (RunOptions::sweep), in group order;
// nothing when another process finishes the run. Fills run->mpi for several processes.
std::optional<std::vector<MethodGroup>> GatherGroups(std::vector<MethodGroup> mine,
                                                     const RunOptions& o, size_t tasks,
                                                     std::chrono::steady_clock::time_point start,
                                                     RunInfo* run) {
  std::vector<SweepUnit> units;
  for (const MethodGroup& g : mine) units.push_back(GroupToUnit(g));
  std::optional<std::vector<SweepUnit>> all = o.sweep.gather(std::move(units));
  if (!all) return std::nullopt;
  CheckGatheredUnits(&*all, GroupNumbers(o), "method groups");
  if (o.sweep.processes > 1) run->mpi = SweepAccounting(o.sweep, *all, SecondsSince(start));
  std::vector<MethodGroup> groups;
  for (const SweepUnit& u : *all) {
    const auto here = std::find_if(mine.begin(), mine.end(),
                                   [&u](const MethodGroup& g) { return g.group == u.unit; });
    groups.push_back(here != mine.end() ? std::move(*here) : GroupFromUnit(u, tasks));
  }
  return groups;
}

}  // namespace

std::vector<uint64_t> ParseSeedList(const std::string& spec) {
  std::vector<uint64_t> seeds;
  if (spec.empty() || spec == "none") return seeds;
  auto parse = [&](std::string_view s) {
    uint64_t v = 0;
    const auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
    if (s.empty() || ec != std::errc() || end != s.data() + s.size()) {
      throw UsageError("invalid seed '" + std::string(s) + "' in '" + spec +
                       "' (expected e.g. 0-4, 0..4 or 1,5,9)");
    }
    return v;
  };
  size_t pos = 0;
  while (pos <= spec.size()) {
    const size_t comma = std::min(spec.find(',', pos), spec.size());
    const std::string_view item = std::string_view(spec).substr(pos, comma - pos);
    size_t sep = item.find("..");
    size_t len = 2;
    if (sep == std::string_view::npos) {
      sep = item.find('-');
      len = 1;
    }
    if (sep != std::string_view::npos) {
      const uint64_t a = parse(item.substr(0, sep)), b = parse(item.substr(sep + len));
      if (b < a || b - a >= 10000) throw UsageError("bad seed range '" + std::string(item) + "'");
      for (uint64_t s = a; s <= b; ++s) seeds.push_back(s);
    } else {
      seeds.push_back(parse(item));
    }
    pos = comma + 1;
  }
  return seeds;
}

RunOutput RunEvaluation(const RunOptions& o, RunInfo run) {
  const auto t_start = Clock::now();
  run.started_at = UtcNow();
  if (o.tasks.empty()) throw UsageError("no task to evaluate");
  if (o.glove.empty() && o.models.empty()) {
    throw UsageError("nothing to evaluate: give --glove FILE and/or --model DIR");
  }
  if (o.sif && o.glove.empty()) throw UsageError("--sif needs --glove FILE (its word vectors)");
  if (!o.ablations.empty() && o.models.empty()) {
    throw UsageError("--ablate needs --model DIR (it ablates an RWKV model)");
  }
  if (o.random_control && o.models.empty()) {
    throw UsageError("--random-control needs --model DIR (its architecture)");
  }

  for (const std::string& spec : o.poolings) {
    methods::CheckPoolingSpec(spec);
    if (o.models.empty()) throw UsageError("--poolings " + spec + " needs --model DIR");
    for (const TaskPlan& plan : o.tasks) {
      if (methods::IsFittedMethod(spec) && plan.fit_split.empty() && plan.fit_pair_file.empty()) {
        throw UsageError("pooling method '" + spec + "' is fitted on a fitting split; " +
                         plan.task + " has none (--fit-split train, or --fit-pairs FILE)");
      }
    }
  }

  // Data first (small, resident for every method alike).
  std::vector<TaskData> data;
  RunOutput out;
  json files = json::object();
  files["data_dir"] = o.data_dir.string();
  for (const TaskPlan& plan : o.tasks) {
    TaskData d;
    TaskResults tr;
    tr.task = plan.task;
    if (!plan.pair_file.empty()) {
      if (plan.splits.size() != 1) throw UsageError("a pair file is scored as exactly one split");
      d.splits.push_back(ReadPairFile(plan.pair_file, plan.pair_options));
      d.splits.back().task = plan.task;
      d.splits.back().split = plan.splits[0];
      files[plan.task + "/" + plan.splits[0]] = plan.pair_file.string();
      tr.samples.push_back(d.splits.back());
      if (!plan.fit_pair_file.empty()) {
        d.fit = ReadPairFile(plan.fit_pair_file, plan.pair_options);
        d.fit->task = plan.task;
        d.fit->split = "fit";
        files[plan.task + "/fit"] = plan.fit_pair_file.string();
      }
    } else {
      for (const std::string& split : plan.splits) {
        d.splits.push_back(LoadTask(plan.task, split, o.data_dir, o.seed));
        files[plan.task + "/" + split] = d.splits.back().source.string();
        tr.samples.push_back(d.splits.back());
      }
      if (!plan.fit_split.empty()) {
        d.fit = LoadTask(plan.task, plan.fit_split, o.data_dir, o.seed);
        files[plan.task + "/fit:" + plan.fit_split] = d.fit->source.string();
      }
    }
    for (const PairDataset* p : {&d.splits.front(), d.fit ? &*d.fit : nullptr}) {
      if (p != nullptr && p->skipped_rows > 0) {
        run.notes.push_back(std::to_string(p->skipped_rows) + " malformed rows of " +
                            p->source.string() + " were skipped (skip_malformed)");
      }
    }
    Log(o, "data: " + plan.task + " loaded from " +
               (plan.pair_file.empty() ? o.data_dir.string() : plan.pair_file.string()));
    data.push_back(std::move(d));
    out.tasks.push_back(std::move(tr));
  }

  // Word-vector baselines, before any model is loaded.
  std::string vectors_note;
  std::vector<MethodGroup> groups;
  if (!o.glove.empty() && o.sweep.Runs(0)) {
    const std::vector<size_t> counts = MethodCounts(out.tasks);
    const auto t_group = Clock::now();
    const bool isolated = eval::ResetPeakRss();
    const auto t0 = Clock::now();
    auto vectors =
        std::make_shared<const baselines::WordVectors>(baselines::WordVectors::LoadText(o.glove));
    const double load = SecondsSince(t0);
    vectors_note = std::to_string(vectors->dim()) + "d word vectors " + o.glove.string() + " (" +
                   std::to_string(vectors->size()) + " words)";
    Log(o, "glove: loaded " + vectors_note + " in " + std::to_string(load) + " s");
    baselines::AveragedWordOptions ao;
    ao.tokenizer = o.word_tokenizer;
    ao.lowercase = o.lowercase;
    baselines::AveragedWordEmbedder glove(vectors, ao);
    RunMethod(glove, "glove", load, isolated, {}, o, data, &out.tasks);
    if (o.sif) {
      // SIF's p(w) and common component come from each task's fit split; the vectors stay
      // loaded from the GloVe run, so SIF's peak includes them (and only them).
      const bool sif_isolated = eval::ResetPeakRss();
      baselines::SifOptions so;
      so.tokenizer = o.word_tokenizer;
      so.lowercase = o.lowercase;
      for (size_t t = 0; t < data.size(); ++t) {
        if (!data[t].fit) {
          throw UsageError("--sif needs a fitting split for " + o.tasks[t].task +
                           " (--fit-split train)");
        }
        baselines::SifEmbedder sif(vectors, so);
        const auto tf = Clock::now();
        sif.Fit(UniqueSentences(*data[t].fit, nullptr));
        std::vector<TaskData> one = {data[t]};
        std::vector<TaskResults> res(1);
        res[0].task = out.tasks[t].task;
        RunMethod(sif, "sif", load + SecondsSince(tf), sif_isolated, {}, o, one, &res);
        res[0].methods[0].description +=
            "; fitted on " + data[t].fit->task + " " + data[t].fit->split;
        out.tasks[t].methods.push_back(std::move(res[0].methods[0]));
      }
    }
    groups.push_back(TakeGroup(0, counts, &out.tasks));
    groups.back().name = o.sif ? "glove+sif" : "glove";
    groups.back().seconds = SecondsSince(t_group);
    groups.back().vectors_note = vectors_note;
    groups.back().files["glove"] = o.glove.string();
  }

  // Each RWKV model, then the random-weights control of its shape.
  std::vector<std::string> model_notes;
  const std::vector<std::string> names = ModelNames(o.models);
  json model_files = json::array();
  for (size_t mi = 0; mi < o.models.size(); ++mi) {
    if (!o.sweep.Runs(1 + static_cast<int>(mi))) continue;
    const std::vector<size_t> counts = MethodCounts(out.tasks);
    const auto t_group = Clock::now();
    const std::filesystem::path& path = o.models[mi];
    const std::string method = o.models.size() == 1 ? "rwkv" : "rwkv:" + names[mi];
    const std::string control =
        o.models.size() == 1 ? "random-control" : "random-control:" + names[mi];
    const auto end_group = [&] {
      groups.push_back(TakeGroup(1 + static_cast<int>(mi), counts, &out.tasks));
      groups.back().name = method;
      groups.back().seconds = SecondsSince(t_group);
      groups.back().model_note = model_notes.back();
      groups.back().files["model"] = model_files.back();
    };
    RwkvEmbedderOptions ro;
    ro.batch_tokens = o.batch_tokens;
    ro.precision = o.precision;
    std::vector<int> layers;
    std::function<void(const std::filesystem::path&)> write_control;
    {
      const bool isolated = eval::ResetPeakRss();
      const auto t0 = Clock::now();
      std::shared_ptr<RwkvEmbedder> model = RwkvEmbedder::Load(path, o.vocab, ro, {}, o.tokenizer);
      ApplyAblations(o.ablations, *model);
      const double load = SecondsSince(t0);
      const SequenceModel& m = model->model();
      layers = ParseLayerSpec(o.layers, m.layer_numbering(), o.hf_index);
      const std::string note = std::string(m.Architecture() == "rwkv7" ? "RWKV-7" : "RWKV-6") +
                               " model " + path.string() + " (" + std::to_string(m.num_blocks()) +
                               " blocks, hidden " + std::to_string(m.hidden_size()) +
                               (m.random_weights() ? ", random weights" : "") + ")";
      model_notes.push_back(o.models.size() == 1 ? note : method + " = " + note);
      model_files.push_back({{"method", method}, {"path", path.string()}});
      Log(o, method + ": loaded " + note + " in " + std::to_string(load) + " s");
      if (o.random_control) write_control = RandomControlWriter(m, o.seed);
      RunMethod(*model, method, load, isolated, layers, o, data, &out.tasks);
      if (!o.poolings.empty()) RunPoolingMethods(model, method, layers, o, data, &out.tasks);
      if (!o.ablations.empty()) {  // the model's method and its pooling methods ("rwkv/<spec>")
        for (TaskResults& t : out.tasks) {
          for (eval::MethodResult& r : t.methods) {
            if (r.method == method || r.method.starts_with(method + "/")) {
              r.description += "; ABLATED: " + AblationsName(o.ablations);
            }
          }
        }
      }
    }  // the model is released here, before the control is loaded
    RunTaskHeads(path, method, ro, o, data, &out.tasks);
    if (!o.random_control) {
      end_group();
      continue;
    }
    const std::filesystem::path dir =
        (o.scratch_dir.empty() ? std::filesystem::temp_directory_path() : o.scratch_dir) /
        ("rwkv-embed-random-control-" + std::to_string(::getpid()) + "-" + std::to_string(mi));
    write_control(dir);
    try {
      const bool isolated = eval::ResetPeakRss();
      const auto t0 = Clock::now();
      // The model's own vocabulary: the control's folder has none.
      std::filesystem::path vocab = o.vocab;
      if (vocab.empty() && o.tokenizer == TokenizerKind::kWorld) vocab = DefaultVocabFor(path);
      auto random = RwkvEmbedder::Load(dir, vocab, ro, {}, o.tokenizer);
      ApplyAblations(o.ablations, *random);
      const double load = SecondsSince(t0);
      RunMethod(*random, control, load, isolated, layers, o, data, &out.tasks);
      for (TaskResults& t : out.tasks) {
        t.methods.back().control_of = method;
        t.methods.back().description += "; random weights (init-model, seed " +
                                        std::to_string(o.seed) + ") in the shape of " +
                                        path.string();
        if (!o.ablations.empty()) {
          t.methods.back().description += "; ABLATED: " + AblationsName(o.ablations);
        }
      }
    } catch (...) {
      std::filesystem::remove_all(dir);
      throw;
    }
    std::filesystem::remove_all(dir);
    end_group();
  }
  // The groups, from this process or gathered from all, back into the tasks in group order.
  if (o.sweep.gather) {
    std::optional<std::vector<MethodGroup>> all =
        GatherGroups(std::move(groups), o, out.tasks.size(), t_start, &run);
    if (!all) {
      RunOutput elsewhere;
      elsewhere.gathered_elsewhere = true;
      return elsewhere;
    }
    groups = std::move(*all);
  }
  model_notes.clear();
  model_files = json::array();
  for (MethodGroup& g : groups) {
    for (size_t t = 0; t < out.tasks.size(); ++t) {
      for (eval::MethodResult& m : g.tasks[t]) out.tasks[t].methods.push_back(std::move(m));
    }
    if (g.group == 0) {
      vectors_note = g.vectors_note;
      files["glove"] = g.files.at("glove");
    } else {
      model_notes.push_back(g.model_note);
      model_files.push_back(g.files.at("model"));
    }
  }
  if (!o.models.empty()) {
    files["models"] = model_files;
    files["vocab"] = o.vocab.empty()
                         ? json("beside each model, else the installed World vocabulary")
                         : json(o.vocab.string());
  }

  if (o.comparisons && o.bootstrap > 0) {
    const metrics::ResampleOptions ro{o.bootstrap, o.seed, o.level};
    for (TaskResults& t : out.tasks) {
      std::vector<const eval::MethodResult*> bases, models;
      for (const char* b : {"glove", "sif"}) {
        if (const eval::MethodResult* m = t.FindMethod(b)) bases.push_back(m);
      }
      for (const eval::MethodResult& m : t.methods) {
        if (m.layered() && m.control_of.empty() && m.pooling_of.empty()) models.push_back(&m);
      }
      for (const eval::MethodResult* model : models) {
        const eval::MethodResult* control = nullptr;
        for (const eval::MethodResult& m : t.methods) {
          if (m.control_of == model->method) control = &m;
        }
        std::vector<eval::Comparison> c = eval::StandardComparisons(*model, bases, control, ro);
        t.comparisons.insert(t.comparisons.end(), c.begin(), c.end());
      }
      const std::vector<eval::Comparison> pc = PoolingComparisons(t, ro);
      t.comparisons.insert(t.comparisons.end(), pc.begin(), pc.end());
      if (models.empty() && bases.size() == 2) {
        for (const eval::SplitResult& s : bases[1]->splits) {
          t.comparisons.push_back(
              eval::CompareLayers(*bases[1], 0, *bases[0], 0, s.split, "vs_baseline", ro));
        }
      }
    }
  }

  // Every choice, recorded.
  json& st = run.settings;
  st["seed"] = o.seed;
  st["bootstrap_resamples"] = o.bootstrap;
  st["confidence_level"] = o.level;
  st["subset_seeds"] = o.subset_seeds;
  st["subset_size"] = o.subset_size;
  st["pooling"] = std::string(PoolingName(o.pooling));
  st["normalization"] = std::string(NormalizationName(o.normalization));
  st["similarity"] = "cosine";
  st["undefined_cosine"] = o.undefined_cosine;
  st["threshold_objective"] = "accuracy, fitted on the fit split minus the scored pairs";
  st["word_tokenizer"] = std::string(baselines::WordTokenizerName(o.word_tokenizer));
  st["lowercase"] = o.lowercase;
  st["oov_words"] = "zero vector, counted in the average (study §3.2)";
  st["layers"] = o.layers;
  st["layers_are_hf_indices"] = o.hf_index;
  st["precision"] = o.precision == kernels::MatMulPrecision::kBF16 ? "bf16" : "f32";
  st["batch_tokens"] = o.batch_tokens;
  st["threads"] = omp_get_max_threads();
  st["random_control"] = o.random_control;
  st["sif"] = o.sif;
  std::vector<std::string> ablations;
  for (const AblationSpec& a : o.ablations) ablations.push_back(a.Name());
  st["ablations"] = ablations;
  if (!o.heads.empty()) {
    st["embedding_rwkv_heads"] = o.heads;
    st["embedding_rwkv_eos_mode"] = o.eos_mode;
  }
  if (!o.poolings.empty()) {
    st["poolings"] = o.poolings;
    st["pooling_training"] =
        "trained poolings (fusion-learned, attention): maximise Pearson(cosine, label) on the fit "
        "split's pairs, Adam lr 0.05, at most 300 steps, 20% of the fit pairs held out (seed = "
        "seed) for early stopping (patience 30); fitted post-processing per layer on the fit "
        "split's sentences; nothing is fitted on a scored split";
    if (!o.templates.empty()) st["templates"] = o.templates.string();
  }
  st["files"] = files;
  if (model_notes.empty()) run.notes.push_back("Model used: none");
  for (const std::string& note : model_notes) run.notes.push_back("Model used: " + note);
  run.notes.push_back("Word vectors used: " +
                      (vectors_note.empty() ? std::string("none") : vectors_note));
  run.notes.push_back(
      "The study used RWKV-6 Finch 1.6B (HF RWKV/v6-Finch-1B6-HF, 24 blocks, hidden 2048) and "
      "GloVe 6B 50d (glove.6B.50d.txt) on a Tesla T4; numbers from other models or vectors are "
      "not comparable to its published ones.");
  if (std::any_of(o.models.begin(), o.models.end(), [](const std::filesystem::path& p) {
        return p.lexically_normal().string().find("tiny") != std::string::npos;
      })) {
    run.notes.push_back(
        "The model here is a tiny test model (random weights per shared/README.md), not the "
        "study's 1.6B model: its RWKV rows measure the harness, not RWKV.");
  }
  if (!o.ablations.empty()) {  // first, so that the report's opening line says it
    run.notes.insert(run.notes.begin(),
                     "ABLATED MODEL: every RWKV model here (and its random control) ran with " +
                         AblationsName(o.ablations) +
                         " (model/ablation.h); its scores are not those of the intact model.");
  }
  run.evaluation_seconds = SecondsSince(t_start);
  out.run = std::move(run);
  return out;
}

std::vector<std::filesystem::path> WriteOutputs(const RunOutput& output,
                                                const std::filesystem::path& out_dir,
                                                std::vector<std::string>* messages) {
  std::vector<std::filesystem::path> written;
  for (const TaskResults& t : output.tasks) {
    const std::filesystem::path p = out_dir / (t.task + ".json");
    WriteJson(TaskJson(t, output.run), p);
    written.push_back(p);
  }
  std::vector<std::string> plot_names;
  const std::filesystem::path plot_dir = out_dir / "plots";
  for (const TaskResults& t : output.tasks) {
    std::vector<std::string> splits;
    for (const PairDataset& d : t.samples) splits.push_back(d.split);
    const TaskResults study = WithoutPoolingMethods(t);
    std::vector<PlotFiles> plots = {PlotLayerSweep(study, splits, plot_dir, t.task + "-layers")};
    const std::string cost_split =
        std::find(splits.begin(), splits.end(), "dev") != splits.end() ? "dev" : splits.front();
    plots.push_back(PlotCosts(study, cost_split, plot_dir, t.task + "-costs"));
    if (const std::optional<TaskResults> pooling = PoolingMethodsOnly(t)) {
      plots.push_back(PlotLayerSweep(*pooling, {cost_split}, plot_dir, t.task + "-poolings"));
    }
    RecordPlots(plots, written, plot_names, messages);
  }
  const std::filesystem::path md = out_dir / "report.md";
  WriteText(MarkdownReport(output.tasks, output.run, plot_names), md);
  written.push_back(md);
  return written;
}

}  // namespace rwkv_embed::report
