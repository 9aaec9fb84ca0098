#include "bench/mpi_scaling.h"

#include <algorithm>
#include <cstdio>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>
#include <type_traits>

#include "core/error.h"
#include "data/line_shards.h"

namespace rwkv_embed::bench {
namespace {

using nlohmann::json;

// j[key] as T; FormatError naming the source and the path of the field.
template <typename T>
T Field(const json& j, const std::string& key, const std::string& source,
        const std::string& where = "") {
  const std::string name = where.empty() ? key : where + "." + key;
  if (!j.is_object() || !j.contains(key)) throw FormatError(source + ": no field '" + name + "'");
  const json& v = j.at(key);
  const bool ok = std::is_same_v<T, std::string> ? v.is_string() : v.is_number();
  if (!ok)
    throw FormatError(source + ": field '" + name + "' is not a " +
                      (std::is_same_v<T, std::string> ? "string" : "number"));
  return v.get<T>();
}

const json& ArrayField(const json& j, const std::string& key, const std::string& source) {
  if (!j.contains(key) || !j.at(key).is_array()) {
    throw FormatError(source + ": field '" + key + "' is missing or not a list");
  }
  return j.at(key);
}

std::string Fixed(double v, int digits) {
  char buf[64];
  std::snprintf(buf, sizeof(buf), "%.*f", digits, v);
  return buf;
}

void ReadBusyTimes(const json& j, const std::string& source, MpiRun& r) {
  for (const json& k : ArrayField(j, "per_rank", source)) {
    r.max_busy_s = std::max(r.max_busy_s, Field<double>(k, "busy_seconds", source, "per_rank[]"));
  }
}

void ReadShardTimings(const json& j, const std::string& source, MpiRun& r) {
  for (const json& s : ArrayField(j, "shard_timings", source)) {
    r.longest_shard_s =
        std::max(r.longest_shard_s, Field<double>(s, "seconds", source, "shard_timings[]"));
    const json bytes = s.value("bytes", json());
    if (!bytes.is_array() || bytes.size() != 2 || !bytes[0].is_number() || !bytes[1].is_number()) {
      throw FormatError(source + ": field 'shard_timings[].bytes' is not [begin, end]");
    }
    r.input_bytes += bytes[1].get<int64_t>() - bytes[0].get<int64_t>();
  }
}

std::string RanksName(int ranks) {
  return std::to_string(ranks) + (ranks == 1 ? " rank" : " ranks");
}

double Efficiency(const MpiRun& r, const MpiRun& base) {
  return base.TokensPerWallSecond() > 0 ? r.TokensPerWallSecond() / base.TokensPerWallSecond() : 0;
}

json RunJson(const MpiRun& r, const MpiRun& base) {
  return {{"ranks", r.ranks},
          {"threads_per_rank", r.threads_per_rank},
          {"shards", r.shards},
          {"sentences", r.sentences},
          {"tokens", r.tokens},
          {"wall_seconds", r.wall_s},
          {"embed_loop_seconds", r.embed_loop_s},
          {"tokens_per_second_wall", r.TokensPerWallSecond()},
          {"efficiency_vs_first", Efficiency(r, base)},
          {"load_balance_max_over_mean", r.load_balance},
          {"outside_embedding_seconds", r.OutsideEmbeddingSeconds()},
          {"longest_shard_seconds", r.longest_shard_s}};
}

json ModelJson(const ClusterModel& m) {
  return {{"formula", "T = fixed + S*k / (P*R) + tail"},
          {"rate_from_ranks", m.base_ranks},
          {"rate_tokens_per_second", m.rate_tokens_per_s},
          {"rate_sentences_per_second", m.rate_tokens_per_s / m.tokens_per_sentence},
          {"tokens_per_sentence", m.tokens_per_sentence},
          {"bytes_per_sentence", m.bytes_per_sentence},
          {"fixed_seconds", m.fixed_s},
          {"measured_longest_shard_seconds", m.measured_longest_shard_s},
          {"nodes", m.nodes},
          {"sentences", m.sentences},
          {"shard_bytes", m.shard_bytes},
          {"tail_seconds", m.tail_s},
          {"embed_seconds", m.embed_s},
          {"estimated_wall_seconds", m.wall_s},
          {"estimated_wall_hours", m.wall_s / 3600}};
}

std::string Duration(double s) {
  if (s >= 3600) return Fixed(s / 3600, 1) + " h";
  if (s >= 60) return Fixed(s / 60, 1) + " min";
  return Fixed(s, 1) + " s";
}

void MarkdownTable(const MpiScalingReport& r, std::ostringstream& md) {
  const MpiRun& base = r.runs.front();
  md << "| ranks x threads | shards | wall s | embed loop s | tokens/s (wall) | efficiency vs "
     << RanksName(base.ranks) << " | load balance (max/mean busy) | outside embedding s |\n";
  md << "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |\n";
  for (const MpiRun& run : r.runs) {
    md << "| " << run.ranks << " x " << run.threads_per_rank << " | " << run.shards << " | "
       << Fixed(run.wall_s, 2) << " | " << Fixed(run.embed_loop_s, 2) << " | "
       << Fixed(run.TokensPerWallSecond(), 1) << " | " << Fixed(Efficiency(run, base), 3) << " | "
       << Fixed(run.load_balance, 3) << " | " << Fixed(run.OutsideEmbeddingSeconds(), 2) << " |\n";
  }
}

void MarkdownModel(const ClusterModel& m, std::ostringstream& md) {
  md << "\ncluster model (docs/mpi.md#estimate): T = fixed + S·k / (P·R) + "
        "tail, one rank per node at this machine's rate\n\n";
  md << "- R = " << Fixed(m.rate_tokens_per_s, 1)
     << " tokens/s = " << Fixed(m.rate_tokens_per_s / m.tokens_per_sentence, 2)
     << " sentences/s (the " << m.base_ranks
     << "-rank run's embedding loop), k = " << Fixed(m.tokens_per_sentence, 1)
     << " tokens/sentence\n";
  md << "- fixed = " << Fixed(m.fixed_s, 2)
     << " s (outside the embedding loop: model load, plan, line count, GEMM choice)\n";
  md << "- tail = one shard of " << Fixed(m.shard_bytes / 1024, 0)
     << " KiB at R: " << Fixed(m.tail_s, 1)
     << " s (longest shard measured here: " << Fixed(m.measured_longest_shard_s, 2) << " s)\n";
  md << "- estimate: " << Fixed(m.sentences, 0) << " sentences on " << Fixed(m.nodes, 0)
     << " such nodes: " << Duration(m.wall_s) << " (" << Fixed(m.wall_s, 0) << " s, of which "
     << Fixed(m.embed_s, 0) << " s embedding)\n";
}

}  // namespace

MpiRun ParseMpiRun(const std::string& text, const std::string& source) {
  json j;
  try {
    j = json::parse(text);
  } catch (const json::exception& e) {
    throw FormatError(source + ": not JSON: " + e.what());
  }
  MpiRun r;
  r.ranks = Field<int>(j, "ranks", source);
  r.threads_per_rank = Field<int>(j, "threads_per_rank", source);
  r.sentences = Field<int64_t>(j, "sentences", source);
  r.shards = Field<int64_t>(j, "shards", source);
  r.tokens = Field<int64_t>(j, "tokens_this_run", source);
  r.load_balance = Field<double>(j, "load_balance_max_over_mean", source);
  if (!j.contains("seconds")) throw FormatError(source + ": no field 'seconds'");
  r.wall_s = Field<double>(j["seconds"], "total", source, "seconds");
  r.embed_loop_s = Field<double>(j["seconds"], "embed_loop", source, "seconds");
  ReadBusyTimes(j, source, r);
  ReadShardTimings(j, source, r);
  r.gemm_choices = j.value("gemm_choices", json::array()).dump();
  if (j.value("resumed", false)) {
    throw DataError(source + ": a resumed run (its figures cover only part of the input)");
  }
  if (r.ranks < 1 || r.sentences < 1 || r.tokens < 1) {
    throw DataError(source + ": a run with " + std::to_string(r.ranks) + " ranks, " +
                    std::to_string(r.sentences) + " sentences and " + std::to_string(r.tokens) +
                    " tokens: nothing to measure");
  }
  return r;
}

ClusterModel FitClusterModel(const MpiRun& base, double nodes, double sentences) {
  if (base.embed_loop_s <= 0 || base.tokens <= 0 || base.sentences <= 0) {
    throw DataError("cluster model: the " + RanksName(base.ranks) +
                    " run has no embedding time or tokens to take a rate from");
  }
  if (!(nodes >= 1) || !(sentences >= 1)) {
    throw UsageError("cluster model: nodes and sentences must be at least 1");
  }
  ClusterModel m;
  m.base_ranks = base.ranks;
  m.rate_tokens_per_s = static_cast<double>(base.tokens) / base.embed_loop_s;
  m.tokens_per_sentence = static_cast<double>(base.tokens) / static_cast<double>(base.sentences);
  m.bytes_per_sentence =
      static_cast<double>(base.input_bytes) / static_cast<double>(base.sentences);
  m.fixed_s = std::max(0.0, base.wall_s - base.embed_loop_s);
  m.measured_longest_shard_s = base.longest_shard_s;
  m.nodes = nodes;
  m.sentences = sentences;
  m.shard_bytes = static_cast<double>(DefaultShardBytes(sentences * m.bytes_per_sentence, nodes));
  const double shard_sentences =
      m.bytes_per_sentence > 0 ? m.shard_bytes / m.bytes_per_sentence : 0;
  m.tail_s = shard_sentences * m.tokens_per_sentence / m.rate_tokens_per_s;
  m.embed_s = sentences * m.tokens_per_sentence / (nodes * m.rate_tokens_per_s);
  m.wall_s = m.fixed_s + m.embed_s + m.tail_s;
  return m;
}

const MpiRun& CheckRunsAgree(const std::vector<MpiRun>& runs) {
  if (runs.empty()) throw UsageError("bench --mpi: no runs");
  const MpiRun* base = &runs.front();
  for (const MpiRun& r : runs) {
    if (r.sentences != runs.front().sentences || r.tokens != runs.front().tokens) {
      throw DataError("bench --mpi: " + RanksName(r.ranks) + " embedded " +
                      std::to_string(r.sentences) + " sentences, " + std::to_string(r.tokens) +
                      " tokens; " + RanksName(runs.front().ranks) + " " +
                      std::to_string(runs.front().sentences) + ", " +
                      std::to_string(runs.front().tokens));
    }
    if (r.ranks == 1 && base->ranks != 1) base = &r;
  }
  return *base;
}

int64_t FirstDifference(const std::filesystem::path& a, const std::filesystem::path& b) {
  std::ifstream fa(a, std::ios::binary), fb(b, std::ios::binary);
  if (!fa) throw IoError("cannot read " + a.string());
  if (!fb) throw IoError("cannot read " + b.string());
  std::vector<char> ba(1 << 20), bb(1 << 20);
  int64_t offset = 0;
  while (true) {
    fa.read(ba.data(), static_cast<std::streamsize>(ba.size()));
    fb.read(bb.data(), static_cast<std::streamsize>(bb.size()));
    const auto na = static_cast<size_t>(fa.gcount()), nb = static_cast<size_t>(fb.gcount());
    const size_t n = std::min(na, nb);
    const auto mismatch =
        std::mismatch(ba.begin(), ba.begin() + static_cast<ptrdiff_t>(n), bb.begin());
    if (mismatch.first != ba.begin() + static_cast<ptrdiff_t>(n)) {
      return offset + (mismatch.first - ba.begin());
    }
    if (na != nb) return offset + static_cast<int64_t>(n);
    if (na == 0) return -1;
    offset += static_cast<int64_t>(n);
  }
}

json ToJson(const MpiScalingReport& r) {
  json j;
  j["build"] = {{"version", r.version}, {"commit", r.build_commit}, {"timestamp", r.timestamp}};
  j["system"] = {{"cpu", r.cpu}, {"cores", r.cores}};
  j["note"] = kOneMachineNote;
  j["settings"] = {
      {"model", r.model},   {"input", r.input},     {"total_threads", r.total_threads},
      {"mpirun", r.mpirun}, {"mpi_exe", r.mpi_exe}, {"embed_options", r.embed_options}};
  j["bit_identical"] = r.bit_identical;
  j["runs"] = json::array();
  for (const MpiRun& run : r.runs) j["runs"].push_back(RunJson(run, r.runs.front()));
  j["cluster_model"] = ModelJson(r.model_estimate);
  return j;
}

std::string ToMarkdown(const MpiScalingReport& r) {
  std::ostringstream md;
  const MpiRun& base = r.runs.front();
  md << "rwkv-embed " << r.version << " (build " << r.build_commit << ") bench --mpi, "
     << r.timestamp << ", " << r.cpu << " (" << r.cores << " cores)\n\n";
  md << "model " << r.model << ", input " << r.input << ": " << base.sentences << " sentences, "
     << base.tokens << " tokens; " << r.total_threads
     << " threads in all, split over the ranks\n\n";
  md << "note: " << kOneMachineNote << ".\n\n";
  MarkdownTable(r, md);
  md << "\n"
     << (r.bit_identical ? "every output bit-identical to " : "outputs DIFFER from ")
     << RanksName(base.ranks) << "'s\n";
  MarkdownModel(r.model_estimate, md);
  return md.str();
}

}  // namespace rwkv_embed::bench
