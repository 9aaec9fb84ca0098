// rwkv-embed tokenize: stdin -> one {"ids":[...]} line per text, with the RWKV World tokenizer.
// Plain mode tokenizes each input line; --jsonl reads {"text": ...} objects (texts may hold
// newlines, escaped in JSON). Streams with large buffers so that big inputs run at tokenizer speed.
//
// On a bad line: to standard output, every line before it has been written (the buffer is flushed
// before the error is reported), so a pipeline keeps what was done; with --output FILE the file is
// written as FILE.partial and renamed only when every line succeeded, so FILE is never partial.
#include <charconv>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <iostream>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "commands.h"
#include "core/error.h"
#include "core/utf8.h"
#include "io/atomic_file.h"
#include "tokenizer/world_tokenizer.h"

namespace rwkv_embed::cli {
namespace {

struct TokenizeOptions {
  std::string vocab;
  std::string model;
  std::string output;  // empty: standard output
  bool jsonl = false;
  bool stats = false;
};

// Splits a FILE* into lines (without the '\n'), reading 1 MiB at a time; a last line without a
// final newline is still a line.
class LineReader {
 public:
  explicit LineReader(std::FILE* in) : in_(in), buffer_(kChunk, '\0') {}

  bool Next(std::string_view& line) {
    while (true) {
      const char* begin = buffer_.data() + start_;
      if (const void* nl = std::memchr(begin, '\n', end_ - start_); nl != nullptr) {
        const size_t length = static_cast<const char*>(nl) - begin;
        line = std::string_view(begin, length);
        start_ += length + 1;
        return true;
      }
      if (eof_) {
        if (start_ == end_) return false;
        line = std::string_view(begin, end_ - start_);
        start_ = end_;
        return true;
      }
      // Keep the partial line, then read more after it (growing the buffer for very long lines).
      std::memmove(buffer_.data(), begin, end_ - start_);
      end_ -= start_;
      start_ = 0;
      if (buffer_.size() - end_ < kChunk / 2) buffer_.resize(buffer_.size() * 2);
      const size_t got = std::fread(buffer_.data() + end_, 1, buffer_.size() - end_, in_);
      end_ += got;
      if (got == 0) {
        if (std::ferror(in_)) throw IoError("cannot read standard input");
        eof_ = true;
      }
    }
  }

 private:
  static constexpr size_t kChunk = size_t{1} << 20;
  std::FILE* in_;
  std::string buffer_;
  size_t start_ = 0;
  size_t end_ = 0;
  bool eof_ = false;
};

// Buffered writer of the {"ids":[...]} lines to standard output or an open file.
class IdsWriter {
 public:
  IdsWriter(std::FILE* out, std::string name) : out_file_(out), name_(std::move(name)) {}
  void Write(const std::vector<int32_t>& ids) {
    out_ += "{\"ids\":[";
    char number[16];
    for (size_t i = 0; i < ids.size(); ++i) {
      if (i > 0) out_ += ',';
      const auto result = std::to_chars(number, number + sizeof(number), ids[i]);
      out_.append(number, result.ptr);
    }
    out_ += "]}\n";
    if (out_.size() >= (size_t{1} << 20)) Flush();
  }
  void Flush() {
    if (!out_.empty() && std::fwrite(out_.data(), 1, out_.size(), out_file_) != out_.size()) {
      throw IoError("cannot write to " + name_);
    }
    out_.clear();
    if (std::fflush(out_file_) != 0) throw IoError("cannot write to " + name_);
  }
  void Finish() {
    Flush();
    if (std::ferror(out_file_)) throw IoError("cannot write to " + name_);
  }

 private:
  std::FILE* out_file_;
  std::string name_;
  std::string out_;
};

// The output file of --output, closed on every path.
struct FileCloser {
  void operator()(std::FILE* f) const { std::fclose(f); }
};

bool IsBlank(std::string_view s) { return s.find_first_not_of(" \t\r") == std::string_view::npos; }

int RunTokenize(const TokenizeOptions& opts) {
  if (opts.vocab.empty() == opts.model.empty()) {
    throw UsageError("tokenize: pass exactly one of --vocab FILE or --model DIR");
  }
  if (!opts.output.empty()) CheckOutputFile(opts.output, "--output");
  using Clock = std::chrono::steady_clock;
  const auto load_start = Clock::now();
  const WorldTokenizer tok = opts.vocab.empty() ? WorldTokenizer::FromModelDir(opts.model)
                                                : WorldTokenizer::FromVocabFile(opts.vocab);
  const auto start = Clock::now();

  LineReader reader(stdin);
  std::optional<PartialFile> partial;
  std::unique_ptr<std::FILE, FileCloser> file;
  if (!opts.output.empty()) {
    partial.emplace(opts.output);
    file.reset(std::fopen(partial->path().c_str(), "wb"));
    if (!file) throw IoError("cannot write " + partial->path().string());
  }
  IdsWriter writer(file ? file.get() : stdout,
                   file ? partial->path().string() : std::string("standard output"));
  std::vector<int32_t> ids;
  std::string_view line;
  size_t line_no = 0, texts = 0, tokens = 0, bytes = 0;
  std::string text;
  try {
    while (reader.Next(line)) {
      ++line_no;
      // Built only for error messages: a per-line string would cost more than tokenizing the line.
      auto where = [line_no] { return "standard input line " + std::to_string(line_no); };
      std::string_view input;
      if (opts.jsonl) {
        if (IsBlank(line)) continue;  // blank lines between records carry no text
        if (!IsValidUtf8(line)) ValidateUtf8(line, where());
        nlohmann::json record;
        try {
          record = nlohmann::json::parse(line);
        } catch (const nlohmann::json::exception& e) {  // syntax, or 406: a number like 1e400
          throw FormatError(where() + ": invalid JSON: " + EscapeForMessage(e.what()));
        }
        const auto it = record.is_object() ? record.find("text") : record.end();
        if (it == record.end() || !it->is_string()) {
          throw DataError(where() + ": expected a JSON object with a string field \"text\"");
        }
        text = it->get<std::string>();
        // nlohmann rejects lone surrogate escapes, so this cannot fail today; it guards the
        // contract.
        if (!IsValidUtf8(text)) ValidateUtf8(text, where());
        input = text;
      } else {
        if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
        if (!IsValidUtf8(line)) ValidateUtf8(line, where());
        input = line;
      }
      ids.clear();
      tok.EncodeAppend(input, ids);
      writer.Write(ids);
      ++texts;
      tokens += ids.size();
      bytes += input.size();
    }
  } catch (const Error&) {
    // To standard output, every text before the failing line has its output line, whatever the
    // buffer held; an --output file's .partial is removed instead (PartialFile).
    if (!file) writer.Flush();
    throw;
  }
  writer.Finish();
  if (file) {
    if (std::fclose(file.release()) != 0) {
      throw IoError("error writing " + partial->path().string());
    }
    partial->Commit();
  }

  if (opts.stats) {
    const double load_s = std::chrono::duration<double>(start - load_start).count();
    const double seconds = std::chrono::duration<double>(Clock::now() - start).count();
    const double safe = seconds > 0 ? seconds : 1e-9;
    std::fprintf(stderr,
                 "tokenize: texts %zu, tokens %zu, bytes %zu, seconds %.4f, texts/s %.0f, "
                 "MB/s %.2f (vocabulary loaded in %.3f s)\n",
                 texts, tokens, bytes, seconds, texts / safe, bytes / safe / 1e6, load_s);
  }
  return 0;
}

}  // namespace

Command RegisterTokenize(CLI::App& app) {
  auto opts = std::make_shared<TokenizeOptions>();
  auto* sub = app.add_subcommand(
      "tokenize",
      "Tokenize standard input with the RWKV World tokenizer; writes one {\"ids\":[...]} line per "
      "text to standard output (no BOS/EOS added)");
  sub->add_option("--vocab", opts->vocab, "vocabulary file (rwkv_vocab_v20230424.txt)")
      ->type_name("FILE");
  sub->add_option("--model", opts->model, "model folder holding rwkv_vocab_v20230424.txt")
      ->type_name("DIR");
  sub->add_option("--output", opts->output,
                  "write the lines to FILE (via FILE.partial, renamed when complete) instead of "
                  "standard output")
      ->type_name("FILE");
  sub->add_flag("--jsonl", opts->jsonl,
                "read JSON Lines with a \"text\" field instead of one text per line");
  sub->add_flag("--stats", opts->stats,
                "print texts, tokens, seconds, texts/s and MB/s to standard error");
  return {sub, [opts]() -> int { return RunTokenize(*opts); }};
}

}  // namespace rwkv_embed::cli
