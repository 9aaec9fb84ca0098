// The pair-file targets (TSV, CSV, JSONL and the GLUE/STS-B readers) share their checks.
#pragma once

#include <cmath>

#include "core/utf8.h"
#include "data/pairs.h"
#include "fuzz_util.h"

namespace rwkv_embed::fuzz {

// What every dataset a reader returns must satisfy, whatever the input.
inline void CheckDataset(const PairDataset& d, const std::optional<double>& label_min,
                         const std::optional<double>& label_max) {
  FUZZ_CHECK(!d.pairs.empty(), "a dataset that parses has pairs");
  FUZZ_CHECK(d.skipped_rows >= 0, "skipped row count");
  for (const SentencePair& p : d.pairs) {
    FUZZ_CHECK(!p.sentence1.empty() && !p.sentence2.empty(), "no empty sentence");
    FUZZ_CHECK(IsValidUtf8(p.sentence1) && IsValidUtf8(p.sentence2), "sentences are UTF-8");
    if (d.has_labels) {
      FUZZ_CHECK(std::isfinite(p.label), "labels are finite");
      FUZZ_CHECK(!label_min || p.label >= *label_min, "label >= label_min");
      FUZZ_CHECK(!label_max || p.label <= *label_max, "label <= label_max");
      FUZZ_CHECK(!d.binary || p.label == 0 || p.label == 1, "binary labels are 0 or 1");
    } else {
      FUZZ_CHECK(std::isnan(p.label), "unlabelled pairs have no made-up label");
    }
  }
}

// ReadPairFile in `format`, strictly and then skipping malformed rows.
inline void FuzzPairFile(const uint8_t* data, size_t size, PairFileFormat format,
                         std::string_view suffix) {
  static TempInput input(suffix);
  const std::filesystem::path& path = input.Write(AsText(data, size));
  for (const bool lenient : {false, true}) {
    PairFileOptions o;
    o.format = format;
    o.read.skip_malformed = lenient;
    o.read.allow_unlabelled = lenient;
    if (lenient) {
      o.label_min = 0;
      o.label_max = 5;
    }
    ExpectOnlyLibraryErrors([&] { CheckDataset(ReadPairFile(path, o), o.label_min, o.label_max); });
  }
}

}  // namespace rwkv_embed::fuzz
