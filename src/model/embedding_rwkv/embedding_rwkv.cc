#include "model/embedding_rwkv/embedding_rwkv.h"

#include <algorithm>
#include <array>
#include <utility>

#include "core/error.h"
#include "io/checkpoint.h"
#include "kernels/norm.h"

namespace rwkv_embed {
namespace {

constexpr std::array<std::string_view, 3> kHeadNames = {"cls", "sts", "retr"};
constexpr double kHeadLayerNormEps = 1e-5;

// task_tag.py: which head each MTEB task type uses.
struct TypeHead {
  std::string_view type;
  EmbeddingRwkvHead head;
};
constexpr TypeHead kTypeHeads[] = {
    {"Classification", EmbeddingRwkvHead::kCls},
    {"Clustering", EmbeddingRwkvHead::kCls},
    {"MultilabelClassification", EmbeddingRwkvHead::kCls},
    {"Regression", EmbeddingRwkvHead::kCls},
    {"Retrieval", EmbeddingRwkvHead::kRetr},
    {"Reranking", EmbeddingRwkvHead::kRetr},
    {"InstructionRetrieval", EmbeddingRwkvHead::kRetr},
    {"STS", EmbeddingRwkvHead::kSts},
    {"BitextMining", EmbeddingRwkvHead::kSts},
    {"PairClassification", EmbeddingRwkvHead::kSts},
    {"Summarization", EmbeddingRwkvHead::kSts},
};

// task_instruct.py: the default description of every task type, then the tasks with their own.
constexpr TaskInstruction kTaskInstructions[] = {
    {"Classification", "Classification", "Categorizing the given news title"},
    {"Clustering", "Clustering", "Categorizing the given news title"},
    {"Retrieval", "Retrieval", "Given a query, retrieve documents that answer the query"},
    {"Reranking", "Reranking", "Given a query, retrieve documents that answer the query"},
    {"STS", "STS", "Retrieve semantically similar text"},
    {"PairClassification", "PairClassification", "Retrieve semantically similar text"},
    {"BitextMining", "BitextMining",
     "Given two sentences, judge whether they are translations of each other"},
    {"MultilabelClassification", "MultilabelClassification",
     "Given a text, classify it into one or more categories"},
    {"Regression", "Regression", "Given a text, predict its score"},
    {"InstructionRetrieval", "InstructionRetrieval",
     "Given a query, retrieve documents that answer the query"},
    {"Summarization", "Summarization", "Retrieve semantically similar summaries"},
    {"AmazonCounterfactualClassification", "Classification",
     "Given an Amazon review, judge whether it is counterfactual."},
    {"AmazonPolarityClassification", "Classification",
     "Classifying Amazon reviews into positive or negative sentiment"},
    {"AmazonReviewsClassification", "Classification",
     "Classifying the given Amazon review into its appropriate rating category"},
    {"Banking77Classification", "Classification",
     "Given a online banking query, find the corresponding intents"},
    {"EmotionClassification", "Classification",
     "Classifying the emotion expressed in the given Twitter message into one of the six "
     "emotions: anger, fear, joy, love, sadness, and surprise"},
    {"ImdbClassification", "Classification",
     "Classifying the sentiment expressed in the given movie review text from the IMDB dataset"},
    {"MassiveIntentClassification", "Classification",
     "Given a user utterance as query, find the user intents"},
    {"MassiveScenarioClassification", "Classification",
     "Given a user utterance as query, find the user scenarios"},
    {"MTOPDomainClassification", "Classification",
     "Classifying the intent domain of the given utterance in task-oriented conversation"},
    {"MTOPIntentClassification", "Classification",
     "Classifying the intent of the given utterance in task-oriented conversation"},
    {"ToxicConversationsClassification", "Classification",
     "Classifying the given comments as either toxic or not toxic"},
    {"TweetSentimentExtractionClassification", "Classification",
     "Classifying the sentiment of a given tweet as either positive, negative, or neutral"},
    {"TNews", "Classification", "Categorizing the given news title"},
    {"IFlyTek", "Classification",
     "Given an App description text, find the appropriate fine-grained category"},
    {"MultilingualSentiment", "Classification",
     "Classifying sentiment of the customer review into positive, neutral, or negative"},
    {"JDReview", "Classification",
     "Classifying sentiment of the customer review for iPhone into positive or negative"},
    {"OnlineShopping", "Classification",
     "Classifying sentiment of the customer review into positive or negative"},
    {"Waimai", "Classification",
     "Classify the customer review from a food takeaway platform into positive or negative"},
    {"ArxivClusteringP2P", "Clustering",
     "Identify the main and secondary category of Arxiv papers based on the titles and "
     "abstracts"},
    {"ArxivClusteringS2S", "Clustering",
     "Identify the main and secondary category of Arxiv papers based on the titles"},
    {"BiorxivClusteringP2P", "Clustering",
     "Identify the main category of Biorxiv papers based on the titles and abstracts"},
    {"BiorxivClusteringS2S", "Clustering",
     "Identify the main category of Biorxiv papers based on the titles"},
    {"MedrxivClusteringP2P", "Clustering",
     "Identify the main category of Medrxiv papers based on the titles and abstracts"},
    {"MedrxivClusteringS2S", "Clustering",
     "Identify the main category of Medrxiv papers based on the titles"},
    {"RedditClustering", "Clustering",
     "Identify the topic or theme of Reddit posts based on the titles"},
    {"RedditClusteringP2P", "Clustering",
     "Identify the topic or theme of Reddit posts based on the titles and posts"},
    {"StackExchangeClustering", "Clustering",
     "Identify the topic or theme of StackExchange posts based on the titles"},
    {"StackExchangeClusteringP2P", "Clustering",
     "Identify the topic or theme of StackExchange posts based on the given paragraphs"},
    {"TwentyNewsgroupsClustering", "Clustering",
     "Identify the topic or theme of the given news articles"},
    {"CLSClusteringS2S", "Clustering",
     "Identify the main category of scholar papers based on the titles"},
    {"CLSClusteringP2P", "Clustering",
     "Identify the main category of scholar papers based on the titles and abstracts"},
    {"ThuNewsClusteringS2S", "Clustering",
     "Identify the topic or theme of the given news articles based on the titles"},
    {"ThuNewsClusteringP2P", "Clustering",
     "Identify the topic or theme of the given news articles based on the titles and contents"},
    {"SprintDuplicateQuestions", "PairClassification", "Retrieve semantically similar questions"},
    {"AskUbuntuDupQuestions", "Reranking", "Retrieve semantically similar questions"},
    {"StackOverflowDupQuestions", "Reranking", "Retrieve semantically similar questions"},
    {"SciDocsRR", "Reranking", "Retrieve relevant paper titles"},
    {"QuoraRetrieval", "Retrieval", "Retrieve semantically similar questions"},
    {"CQADupstack", "Retrieval",
     "Given a question, retrieve detailed question descriptions from Stackexchange that are "
     "duplicates to the given question"},
    {"SummEval", "Summarization", "Retrieve semantically similar summaries"},
};

int64_t CeilDiv(int64_t a, int64_t b) { return (a + b - 1) / b; }

// Appends `n_eos` pieces of ceil(n / n_eos) tokens (the last ones shorter or empty), each
// followed by EOS (the wrapper's _normal_ctx_process).
void AppendChunked(std::span<const int32_t> ids, int64_t n_eos, EosSequence& out) {
  const int64_t n = static_cast<int64_t>(ids.size());
  const int64_t size = std::max<int64_t>(1, CeilDiv(n, n_eos));
  for (int64_t c = 0; c < n_eos; ++c) {
    const int64_t begin = std::min(c * size, n), end = std::min(c * size + size, n);
    out.ids.insert(out.ids.end(), ids.begin() + begin, ids.begin() + end);
    out.eos_positions.push_back(static_cast<int64_t>(out.ids.size()));
    out.ids.push_back(kEmbeddingRwkvEos);
  }
}

// The MTEB wrapper's _build_batch for one text (echo mode).
EosSequence BuildEcho(std::span<const int32_t> tokens) {
  constexpr int64_t n_eos = kEmbeddingRwkvCtxLen / kEmbeddingRwkvEosChunk;
  const auto ids =
      tokens.first(std::min<size_t>(tokens.size(), static_cast<size_t>(8 * kEmbeddingRwkvCtxLen)));
  const int64_t n = static_cast<int64_t>(ids.size());
  EosSequence out;
  if (n < kEmbeddingRwkvEosChunk) {  // short: the text repeated, each copy + EOS
    for (int64_t c = 0; c < n_eos; ++c) {
      out.ids.insert(out.ids.end(), ids.begin(), ids.end());
      out.eos_positions.push_back(static_cast<int64_t>(out.ids.size()));
      out.ids.push_back(kEmbeddingRwkvEos);
    }
  } else if (n <= kEmbeddingRwkvCtxLen - n_eos) {
    AppendChunked(ids, n_eos, out);
  } else {  // long: ceil(n / ctx_len) splits, each chunked
    const int64_t splits = CeilDiv(n, kEmbeddingRwkvCtxLen);
    const int64_t size = CeilDiv(n, splits);
    for (int64_t s = 0; s < splits; ++s) {
      const int64_t begin = std::min(s * size, n), end = std::min(s * size + size, n);
      AppendChunked(ids.subspan(begin, end - begin), n_eos, out);
    }
  }
  return out;
}

}  // namespace

EmbeddingRwkvHead ParseEmbeddingRwkvHead(std::string_view name) {
  for (size_t i = 0; i < kHeadNames.size(); ++i) {
    if (name == kHeadNames[i]) return static_cast<EmbeddingRwkvHead>(i);
  }
  throw UsageError("unknown head '" + std::string(name) + "': expected cls, sts or retr");
}

std::string_view EmbeddingRwkvHeadName(EmbeddingRwkvHead head) {
  return kHeadNames[static_cast<size_t>(head)];
}

EosMode ParseEosMode(std::string_view name) {
  if (name == "single") return EosMode::kSingle;
  if (name == "echo") return EosMode::kEcho;
  if (name == "eval") return EosMode::kEval;
  throw UsageError("unknown EOS mode '" + std::string(name) + "': expected single, echo or eval");
}

std::string_view EosModeName(EosMode mode) {
  switch (mode) {
    case EosMode::kSingle:
      return "single";
    case EosMode::kEcho:
      return "echo";
    case EosMode::kEval:
      break;
  }
  return "eval";
}

EosSequence BuildEosSequence(std::span<const int32_t> tokens, EosMode mode) {
  if (mode == EosMode::kSingle) {
    EosSequence out;
    out.ids.assign(tokens.begin(), tokens.end());
    out.eos_positions.push_back(static_cast<int64_t>(out.ids.size()));
    out.ids.push_back(kEmbeddingRwkvEos);
    return out;
  }
  EosSequence out = BuildEcho(tokens);
  if (mode == EosMode::kEval) {
    const int64_t n = static_cast<int64_t>(out.ids.size());
    const int64_t pad = CeilDiv(n, kEmbeddingRwkvAlign) * kEmbeddingRwkvAlign - n;
    out.ids.insert(out.ids.begin(), pad, kEmbeddingRwkvAlignToken);
    for (int64_t& p : out.eos_positions) p += pad;
  }
  return out;
}

std::span<const TaskInstruction> TaskInstructions() { return kTaskInstructions; }

EmbeddingRwkvHead HeadForTaskType(std::string_view type) {
  for (const TypeHead& t : kTypeHeads) {
    if (t.type == type) return t.head;
  }
  throw UsageError("unknown task type '" + std::string(type) + "'");
}

bool InstructsDocuments(std::string_view type) {
  return HeadForTaskType(type) != EmbeddingRwkvHead::kRetr;
}

const TaskInstruction& FindTaskInstruction(std::string_view task) {
  for (const TaskInstruction& t : kTaskInstructions) {
    if (t.task == task) return t;
  }
  std::string types;
  for (const TypeHead& t : kTypeHeads) types += (types.empty() ? "" : ", ") + std::string(t.type);
  throw UsageError("unknown task '" + std::string(task) + "': expected a task type (" + types +
                   ") or an MTEB task the package gives its own instruction (see "
                   "docs/checkpoints.md#embeddingrwkv)");
}

std::string ApplyInstruction(std::string_view description, std::string_view text) {
  if (description.empty() || text.find("Instruct:") != std::string_view::npos) {
    return std::string(text);
  }
  return "Instruct: " + std::string(description) + "\nQuery: " + std::string(text);
}

bool HasEmbeddingRwkvHeads(const TensorStore& store) {
  return std::any_of(kHeadNames.begin(), kHeadNames.end(), [&](std::string_view h) {
    return store.Find("head." + std::string(h) + "_head.fc1.weight") != nullptr;
  });
}

bool HasEmbeddingRwkvHeads(const std::filesystem::path& model_path) {
  return HasEmbeddingRwkvHeads(OpenCheckpoint(model_path));
}

std::unique_ptr<EmbeddingRwkvHeads> EmbeddingRwkvHeads::Load(const std::filesystem::path& path,
                                                             int64_t hidden_size,
                                                             const LoadOptions& options) {
  std::unique_ptr<EmbeddingRwkvHeads> h(new EmbeddingRwkvHeads());
  h->store_ = OpenCheckpoint(path);
  h->C_ = hidden_size;
  TensorReader reader(h->store_, options, h->owned_, h->used_);
  for (size_t i = 0; i < kHeadNames.size(); ++i) {
    const std::string p = "head." + std::string(kHeadNames[i]) + "_head.";
    Head& head = h->heads_[i];
    head.fc1 = reader.Matrix(p + "fc1.weight", hidden_size, hidden_size);
    head.fc2 = reader.Matrix(p + "fc2.weight", hidden_size, hidden_size);
    head.norm = reader.LayerNorm(p + "norm", hidden_size);
  }
  return h;
}

void EmbeddingRwkvHeads::Apply(EmbeddingRwkvHead which, const float* x, int64_t rows,
                               float* out) const {
  if (rows == 0) return;
  const Head& head = heads_[static_cast<size_t>(which)];
  std::vector<float> hidden(static_cast<size_t>(rows * C_));
  kernels::MatMulT(x, rows, head.fc1, hidden.data());
  for (float& v : hidden) v = std::max(v, 0.0f);
  kernels::MatMulT(hidden.data(), rows, head.fc2, out);
  for (int64_t i = 0; i < rows * C_; ++i) out[i] += x[i];
  kernels::LayerNormRows(out, rows, C_, head.norm.weight.data(), head.norm.bias.data(),
                         kHeadLayerNormEps, out);
}

}  // namespace rwkv_embed
