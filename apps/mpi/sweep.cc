// `eval`, `reproduce` and `ablate` under rwkv-embed-mpi: the run's units (report/sweep.h: the
// method groups of eval and reproduce — the word-vector baselines, then each model with its
// random control —, the passes of ablate — the intact model, then each ablation) dealt over the
// ranks, the results gathered on rank 0, which finishes the run (comparisons, settings, notes,
// the "mpi" accounting) and writes the outputs exactly as a single-process run would (docs/mpi.md).
// One dealer and one gather for all three commands; what a unit carries is the report code's
// business (report::SweepUnit, through report/ablation_study.h).
#include <mpi.h>

#include <atomic>
#include <chrono>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "../cli/eval_options.h"
#include "core/error.h"
#include "kernels/gemm.h"
#include "kernels/gemm_autotune.h"
#include "model/rwkv_embedder.h"
#include "mpi_cli.h"
#include "report/ablation_study.h"
#include "report/method_codec.h"

namespace rwkv_embed::mpi {
namespace {

using nlohmann::json;

constexpr int kTagUnits = 21, kTagClaim = 22, kTagDeal = 23;

struct World {
  int rank = 0, size = 1;
};

World GetWorld() {
  World w;
  MPI_Comm_rank(MPI_COMM_WORLD, &w.rank);
  MPI_Comm_size(MPI_COMM_WORLD, &w.size);
  return w;
}

// Waiting ranks poll and sleep instead of spinning in Open MPI's blocking calls, which would take
// cores from the ranks still evaluating.
void WaitGently(MPI_Request& request) {
  int done = 0;
  while (MPI_Test(&request, &done, MPI_STATUS_IGNORE) == MPI_SUCCESS && !done) {
    std::this_thread::sleep_for(std::chrono::microseconds(500));
  }
}

std::string Broadcast(std::string s, const World& w) {
  uint64_t n = s.size();
  MPI_Request request;
  MPI_Ibcast(&n, 1, MPI_UINT64_T, 0, MPI_COMM_WORLD, &request);
  WaitGently(request);
  if (w.rank != 0) s.resize(n);
  MPI_Ibcast(s.data(), static_cast<int>(n), MPI_CHAR, 0, MPI_COMM_WORLD, &request);
  WaitGently(request);
  return s;
}

// The models a run loads and how.
struct ModelsOfRun {
  std::vector<std::filesystem::path> models;
  std::filesystem::path vocab;
  TokenizerKind tokenizer = TokenizerKind::kWorld;
  int64_t batch_tokens = 2048;
  kernels::MatMulPrecision precision = kernels::MatMulPrecision::kF32;
};

// One set of GEMM paths on every rank, as in a single process (which would tune each weight
// shape once, for every model): rank 0 meets every model's weight shapes with one probe text each
// (models loaded one at a time), tunes or reads its cache, and every rank installs that list.
// Nothing to do when a path is forced (--gemm-path).
void ShareGemmChoices(const ModelsOfRun& o, const World& w) {
  if (kernels::ForcedGemmPath() != kernels::GemmPath::kAuto || o.models.empty()) return;
  std::string choices;
  if (w.rank == 0) {
    RwkvEmbedderOptions ro;
    ro.batch_tokens = o.batch_tokens;
    ro.precision = o.precision;
    for (const std::filesystem::path& model : o.models) {
      const auto embedder = RwkvEmbedder::Load(model, o.vocab, ro, {}, o.tokenizer);
      const std::vector<std::string> probe = {"GEMM shapes"};
      (void)embedder->Embed(probe, EmbedRequest{});
    }
    kernels::TuneSeenGemmShapes();
    choices = kernels::ExportGemmChoices();
  }
  kernels::InstallGemmChoices(Broadcast(choices, w));
}

// Units taken one at a time as ranks become free, so that a rank given a large model (or a slow
// node) does not hold the others back: rank 0 keeps the next unit number not yet taken; a thread
// on rank 0 answers the other ranks' claims (needs MPI_THREAD_MULTIPLE, else units go round
// robin).
class Dealer {
 public:
  explicit Dealer(const World& w) : w_(w) {
    if (w.rank == 0) thread_ = std::thread([this] { Serve(); });
  }
  ~Dealer() { Stop(); }
  Dealer(const Dealer&) = delete;
  Dealer& operator=(const Dealer&) = delete;

  // Whether this rank runs `unit`; asked for increasing units. A claimed number below `unit` is
  // one the run does not have (eval without word vectors has no group 0): claim again.
  bool Runs(int unit) {
    while (claimed_ < unit) claimed_ = Claim();
    return claimed_ == unit;
  }
  // Rank 0, once every rank has sent its results (no claim can come any more).
  void Stop() {
    stop_ = true;
    if (thread_.joinable()) thread_.join();
  }

 private:
  int Take() {
    std::lock_guard lock(mutex_);
    return next_++;
  }
  int Claim() {
    if (w_.rank == 0) return Take();
    int claim = 0, group = 0;
    MPI_Request requests[2];
    MPI_Irecv(&group, 1, MPI_INT, 0, kTagDeal, MPI_COMM_WORLD, &requests[1]);
    MPI_Isend(&claim, 1, MPI_INT, 0, kTagClaim, MPI_COMM_WORLD, &requests[0]);
    WaitGently(requests[0]);
    WaitGently(requests[1]);
    return group;
  }
  void Serve() {
    while (!stop_) {
      int flag = 0;
      MPI_Status st;
      MPI_Iprobe(MPI_ANY_SOURCE, kTagClaim, MPI_COMM_WORLD, &flag, &st);
      if (!flag) {
        std::this_thread::sleep_for(std::chrono::milliseconds(1));
        continue;
      }
      int claim = 0;
      MPI_Recv(&claim, 1, MPI_INT, st.MPI_SOURCE, kTagClaim, MPI_COMM_WORLD, MPI_STATUS_IGNORE);
      const int group = Take();
      MPI_Send(&group, 1, MPI_INT, st.MPI_SOURCE, kTagDeal, MPI_COMM_WORLD);  // one int: eager
    }
  }

  std::mutex mutex_;
  int next_ = 0;
  int claimed_ = -1;
  World w_;
  std::atomic<bool> stop_ = false;
  std::thread thread_;
};

// Ranks other than 0 send their units (CBOR: every double exact, NaN included) and are done;
// rank 0 receives every rank's and returns them all. Each unit is stamped with its rank.
std::optional<std::vector<report::SweepUnit>> Gather(std::vector<report::SweepUnit> mine,
                                                     const World& w) {
  for (report::SweepUnit& u : mine) u.rank = w.rank;
  if (w.rank != 0) {
    json list = json::array();
    for (const report::SweepUnit& u : mine) list.push_back(report::SweepUnitToJson(u));
    const std::vector<uint8_t> bytes = report::EncodeCbor(list);
    if (bytes.size() > static_cast<size_t>(INT32_MAX)) {
      throw DataError("results of rank " + std::to_string(w.rank) + " exceed 2 GiB");
    }
    MPI_Request request;
    MPI_Isend(bytes.data(), static_cast<int>(bytes.size()), MPI_BYTE, 0, kTagUnits, MPI_COMM_WORLD,
              &request);
    WaitGently(request);
    return std::nullopt;
  }
  for (int r = 1; r < w.size; ++r) {
    int flag = 0;
    MPI_Status st;
    while (MPI_Iprobe(r, kTagUnits, MPI_COMM_WORLD, &flag, &st) == MPI_SUCCESS && !flag) {
      std::this_thread::sleep_for(std::chrono::microseconds(500));
    }
    int count = 0;
    MPI_Get_count(&st, MPI_BYTE, &count);
    std::vector<uint8_t> bytes(static_cast<size_t>(count));
    MPI_Recv(bytes.data(), count, MPI_BYTE, r, kTagUnits, MPI_COMM_WORLD, MPI_STATUS_IGNORE);
    for (const json& u : report::DecodeCbor(bytes)) {
      mine.push_back(report::SweepUnitFromJson(u));
      if (mine.back().rank != r)
        throw FormatError("rank " + std::to_string(r) + " sent a unit of another rank");
    }
  }
  return mine;
}

// Shares rank 0's GEMM choices, then (several ranks) deals the run's units and gathers them, and
// marks the other ranks' progress lines with their rank.
void Install(const ModelsOfRun& models, report::Sweep* sweep,
             std::function<void(const std::string&)>* log) {
  const World w = GetWorld();
  ShareGemmChoices(models, w);
  if (w.size == 1) return;  // a single rank runs exactly as rwkv-embed
  int threading = MPI_THREAD_SINGLE;
  MPI_Query_thread(&threading);
  sweep->processes = w.size;
  if (GetSweepOptions().schedule == "dynamic" && threading == MPI_THREAD_MULTIPLE) {
    sweep->schedule = "dynamic";
    auto dealer = std::make_shared<Dealer>(w);
    sweep->runs = [dealer](int unit) { return dealer->Runs(unit); };
    sweep->gather = [dealer, w](std::vector<report::SweepUnit> mine) {
      auto all = Gather(std::move(mine), w);
      dealer->Stop();
      return all;
    };
  } else {  // unit u on rank u mod N
    sweep->schedule = "round-robin";
    sweep->runs = [w](int unit) { return unit % w.size == w.rank; };
    sweep->gather = [w](std::vector<report::SweepUnit> mine) { return Gather(std::move(mine), w); };
  }
  if (w.rank != 0 && *log) {
    *log = [inner = *log, rank = w.rank](const std::string& line) {
      inner("[rank " + std::to_string(rank) + "] " + line);
    };
  }
}

void InstallSweep(report::RunOptions* o) {
  Install({o->models, o->vocab, o->tokenizer, o->batch_tokens, o->precision}, &o->sweep, &o->log);
}

void InstallAblationSweep(report::AblationStudyOptions* o) {
  Install({{o->model}, o->vocab, o->tokenizer, o->batch_tokens, o->precision}, &o->sweep, &o->log);
}

}  // namespace

void InstallSweepHook() {
  cli::SweepHook& hook = cli::GetSweepHook();
  hook.install = &InstallSweep;
  hook.install_ablation = &InstallAblationSweep;
}

}  // namespace rwkv_embed::mpi
