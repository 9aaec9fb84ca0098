#include <gtest/gtest.h>

#include <cmath>
#include <fstream>
#include <set>
#include <string>
#include <vector>

#include "core/error.h"
#include "core/utf8.h"
#include "data/pairs.h"
#include "test_util.h"

namespace rwkv_embed {
namespace {

using ::rwkv_embed::testing::TempDir;

std::filesystem::path WriteFile(const std::filesystem::path& dir, const std::string& name,
                                const std::string& content) {
  auto path = dir / name;
  std::ofstream(path, std::ios::binary) << content;
  return path;
}

// Runs `read` and checks that it throws E with a message containing "<file>:<line>:" and `what`.
template <typename E, typename Read>
void ExpectRowError(Read&& read, const std::filesystem::path& path, int line,
                    const std::string& what) {
  try {
    read();
    ADD_FAILURE() << "no exception; expected error at " << path << ":" << line;
  } catch (const E& e) {
    const std::string msg = e.what();
    EXPECT_NE(msg.find(path.string() + ":" + std::to_string(line) + ":"), std::string::npos) << msg;
    EXPECT_NE(msg.find(what), std::string::npos) << msg;
  }
}

std::set<std::string> Ids(const PairDataset& d) {
  std::set<std::string> ids;
  for (const auto& p : d.pairs) ids.insert(p.id);
  return ids;
}

// ---- real MRPC files ---------------------------------------------------------------------------

TEST(MrpcTest, GlueTrainCountsFirstAndLastPair) {
  RWKV_EMBED_REQUIRE_SHARED(path, "data/mrpc/train.tsv");
  const PairDataset d = ReadMrpc(path);
  ASSERT_EQ(d.pairs.size(), 3668u);
  EXPECT_TRUE(d.binary);
  EXPECT_TRUE(d.has_labels);
  EXPECT_EQ(d.skipped_rows, 0);
  // The file starts with a UTF-8 BOM; the header matched only because it was stripped.
  const SentencePair& first = d.pairs.front();
  EXPECT_EQ(first.id, "702876-702977");
  EXPECT_EQ(first.label, 1.0);
  EXPECT_EQ(first.sentence1,
            "Amrozi accused his brother, whom he called \"the witness\", of deliberately "
            "distorting his evidence.");
  const SentencePair& last = d.pairs.back();
  EXPECT_EQ(last.id, "453575-453448");
  EXPECT_EQ(last.label, 0.0);
  EXPECT_EQ(last.sentence2,
            "The 30-year bond US30YT=RR grew 1-3/32 for a yield of 4.30 percent, down from 4.35 "
            "percent late Wednesday.");
  int positives = 0;
  for (const auto& p : d.pairs) positives += p.label == 1.0;
  EXPECT_EQ(positives, 2474);
}

TEST(MrpcTest, GlueDevReadsUnbalancedQuotesVerbatim) {
  RWKV_EMBED_REQUIRE_SHARED(path, "data/mrpc/dev.tsv");
  const PairDataset d = ReadMrpc(path);
  ASSERT_EQ(d.pairs.size(), 408u);
  EXPECT_EQ(d.pairs[0].id, "1355540-1355592");
  EXPECT_EQ(d.pairs[0].sentence1,
            "He said the foodservice pie business doesn't fit the company's long-term growth "
            "strategy.");
  // One unbalanced '"' at the start: CSV quoting would have swallowed the following rows.
  EXPECT_EQ(d.pairs[0].sentence2,
            "\"The foodservice pie business does not fit our long-term growth strategy.");
  EXPECT_EQ(d.pairs.back().id, "485999-486011");
  EXPECT_EQ(d.pairs.back().sentence2,
            "In Soviet times the Beatles' music \"was considered propaganda of an alien ideology.");
  int positives = 0;
  for (const auto& p : d.pairs) positives += p.label == 1.0;
  EXPECT_EQ(positives, 279);
}

TEST(MrpcTest, GlueTestHasNoLabelsAndIsRefusedUnlessAsked) {
  RWKV_EMBED_REQUIRE_SHARED(path, "data/mrpc/test.tsv");
  try {
    ReadMrpc(path);
    ADD_FAILURE() << "expected DataError";
  } catch (const DataError& e) {
    EXPECT_NE(std::string(e.what()).find(path.string() + ": has no labels"), std::string::npos)
        << e.what();
  }
}

TEST(MrpcTest, GlueTestReadWhenUnlabelledAllowed) {
  RWKV_EMBED_REQUIRE_SHARED(path, "data/mrpc/test.tsv");
  const PairDataset d = ReadMrpc(path, {.allow_unlabelled = true});
  ASSERT_EQ(d.pairs.size(), 1725u);
  EXPECT_FALSE(d.has_labels);
  EXPECT_TRUE(std::isnan(d.pairs[0].label));  // never a made-up 0
  EXPECT_EQ(d.pairs[0].id, "1089874-1089925");
  EXPECT_EQ(d.pairs.back().id, "2136244-2136052");
}

TEST(MrpcTest, OriginalMsrFiles) {
  RWKV_EMBED_REQUIRE_SHARED(train_path, "data/mrpc/msr_paraphrase_train.txt");
  RWKV_EMBED_REQUIRE_SHARED(test_path, "data/mrpc/msr_paraphrase_test.txt");
  const PairDataset train = ReadMrpc(train_path);  // also has a BOM
  ASSERT_EQ(train.pairs.size(), 4076u);
  EXPECT_EQ(train.pairs.front().id, "702876-702977");
  EXPECT_EQ(train.pairs.back().id, "453575-453448");
  const PairDataset test = ReadMrpc(test_path);
  ASSERT_EQ(test.pairs.size(), 1725u);
  EXPECT_EQ(test.pairs.front().id, "1089874-1089925");
  EXPECT_EQ(test.pairs.front().label, 1.0);
  EXPECT_EQ(test.pairs.back().id, "2136244-2136052");
  EXPECT_EQ(test.pairs.back().sentence1,
            "Sobig.F spreads when unsuspecting computer users open file attachments in emails "
            "that contain such familiar headings as \"Thank You!,\" \"Re: Details\" or \"Re: That "
            "Movie.\"");
  int positives = 0;
  for (const auto& p : test.pairs) positives += p.label == 1.0;
  EXPECT_EQ(positives, 1147);
}

// ---- real STS-B files --------------------------------------------------------------------------

TEST(StsbTest, SplitsCountsAndExtraColumns) {
  RWKV_EMBED_REQUIRE_SHARED(train_path, "data/stsb/sts-train.tsv");
  RWKV_EMBED_REQUIRE_SHARED(dev_path, "data/stsb/sts-dev.tsv");
  RWKV_EMBED_REQUIRE_SHARED(test_path, "data/stsb/sts-test.tsv");
  const PairDataset train = ReadStsb(train_path);
  const PairDataset dev = ReadStsb(dev_path);
  const PairDataset test = ReadStsb(test_path);
  EXPECT_EQ(train.pairs.size(), 5749u);
  EXPECT_EQ(dev.pairs.size(), 1500u);
  EXPECT_EQ(test.pairs.size(), 1379u);
  EXPECT_FALSE(train.binary);
  EXPECT_EQ(train.pairs[0].id, "main-captions/MSRvid/2012test/0001");
  EXPECT_EQ(train.pairs[0].label, 5.0);
  EXPECT_EQ(train.pairs[0].sentence1, "A plane is taking off.");
  EXPECT_EQ(train.pairs[0].sentence2, "An air plane is taking off.");
  EXPECT_EQ(test.pairs[0].label, 2.5);
  EXPECT_EQ(dev.pairs.back().id, "main-news/headlines/2016/1495");
  EXPECT_EQ(dev.pairs.back().sentence2,
            "New York police officer critically wounded in hatchet attack");
  // Line 5553 of sts-train.tsv has 9 columns (two trailing source notes): they are ignored.
  const SentencePair& extra = train.pairs[5552];
  EXPECT_EQ(extra.id, "main-news/headlines/2016/0012");
  EXPECT_EQ(extra.label, 4.0);
  EXPECT_EQ(extra.sentence1, "Driver backs into stroller with child, drives off");
  EXPECT_EQ(extra.sentence2, "Driver backs into mom, stroller with child then drives off");
  // Line 626 of sts-test.tsv: extra columns, and sentences with trailing spaces kept verbatim.
  const SentencePair& forum = test.pairs[625];
  EXPECT_EQ(forum.id, "main-forums/answer-answer/2016/0008");
  EXPECT_EQ(forum.label, 3.0);
  EXPECT_EQ(forum.sentence2,
            "I remained under the banyan tree, exhausted by my daily ritual of herding the cats "
            "every two hours. ");
  for (const auto* d : {&train, &dev, &test}) {
    for (const auto& p : d->pairs) ASSERT_TRUE(p.label >= 0 && p.label <= 5) << p.id;
  }
}

// ---- LoadTask, subsets, unique sentences -------------------------------------------------------

TEST(LoadTaskTest, MapsSplitsToFiles) {
  RWKV_EMBED_REQUIRE_SHARED(dir, "data/mrpc/train.tsv");
  const auto data_dir = ::rwkv_embed::testing::SharedDir() / "data";
  const PairDataset dev = LoadTask("mrpc", "dev", data_dir);
  EXPECT_EQ(dev.task, "mrpc");
  EXPECT_EQ(dev.split, "dev");
  EXPECT_EQ(dev.pairs.size(), 408u);
  const PairDataset test = LoadTask("mrpc", "test", data_dir);
  EXPECT_EQ(test.source.filename(), "msr_paraphrase_test.txt");
  EXPECT_TRUE(test.has_labels);
  EXPECT_EQ(LoadTask("stsb", "dev", data_dir).pairs.size(), 1500u);
  EXPECT_THROW(LoadTask("sst2", "dev", data_dir), UsageError);
  EXPECT_THROW(LoadTask("mrpc", "validation", data_dir), UsageError);
  EXPECT_THROW(LoadTask("mrpc", "train-", data_dir), UsageError);
  EXPECT_THROW(LoadTask("mrpc", "train-0", data_dir), UsageError);
  EXPECT_THROW(LoadTask("mrpc", "train-99999", data_dir), UsageError);
}

TEST(LoadTaskTest, Train1000IsAFixedSeededSubset) {
  RWKV_EMBED_REQUIRE_SHARED(dir, "data/mrpc/train.tsv");
  const auto data_dir = ::rwkv_embed::testing::SharedDir() / "data";
  const PairDataset full = LoadTask("mrpc", "train", data_dir);
  const PairDataset s0 = LoadTask("mrpc", "train-1000", data_dir);
  ASSERT_EQ(s0.pairs.size(), 1000u);
  EXPECT_EQ(s0.split, "train-1000");
  ASSERT_TRUE(s0.subset_seed.has_value());
  EXPECT_EQ(*s0.subset_seed, 0u);
  EXPECT_EQ(Ids(s0).size(), 1000u);  // without replacement
  // Regression anchor, cross-checked with tests/metrics_reference.py (an independent Python
  // PortableRng): seed 0 picks these pairs, kept in train.tsv order.
  const std::vector<std::string> first_five = {"1236820-1236712", "738533-737951", "579975-579810",
                                               "3114205-3114194", "3131772-3131625"};
  for (size_t i = 0; i < first_five.size(); ++i) EXPECT_EQ(s0.pairs[i].id, first_five[i]) << i;
  EXPECT_EQ(s0.pairs.back().id, "453575-453448");
  // Source order is kept: positions in the full file increase.
  size_t cursor = 0;
  for (const auto& p : s0.pairs) {
    while (cursor < full.pairs.size() && full.pairs[cursor].id != p.id) ++cursor;
    ASSERT_LT(cursor, full.pairs.size()) << p.id << " out of order or absent";
  }
  const PairDataset s1 = LoadTask("mrpc", "train-1000", data_dir, 1);
  EXPECT_EQ(s1.pairs[0].id, "3344667-3344648");
  EXPECT_NE(Ids(s0), Ids(s1));
  EXPECT_EQ(Ids(LoadTask("mrpc", "train-1000", data_dir, 0)), Ids(s0));  // deterministic
}

TEST(SubsetTest, GenericSubsetKeepsMetadataAndRejectsOversize) {
  PairDataset d;
  d.task = "t";
  d.split = "train";
  d.binary = true;
  for (int i = 0; i < 10; ++i) d.pairs.push_back({std::to_string(i), "a", "b", double(i % 2)});
  const PairDataset s = SubsetPairs(d, 4, 42);
  EXPECT_EQ(s.split, "train-4");
  EXPECT_TRUE(s.binary);
  // PortableRng(42): Below(10), Below(9), Below(8), Below(7) = 7, 5, 6, 0 (tests/
  // metrics_reference.py) -> partial Fisher–Yates picks 7, 6, 8, 3 -> source order 3, 6, 7, 8.
  std::vector<std::string> ids;
  for (const auto& p : s.pairs) ids.push_back(p.id);
  EXPECT_EQ(ids, (std::vector<std::string>{"3", "6", "7", "8"}));
  EXPECT_EQ(*s.subset_seed, 42u);
  EXPECT_EQ(SubsetPairs(d, 10, 3).pairs.size(), 10u);
  EXPECT_THROW(SubsetPairs(d, 11, 0), UsageError);
  EXPECT_THROW(SubsetPairs(d, 0, 0), UsageError);
}

TEST(UniqueSentencesTest, MrpcDevHas807DistinctSentences) {
  RWKV_EMBED_REQUIRE_SHARED(path, "data/mrpc/dev.tsv");
  const PairDataset d = ReadMrpc(path);
  std::vector<std::pair<int, int>> index;
  const auto unique = UniqueSentences(d, &index);
  EXPECT_EQ(unique.size(), 807u);
  ASSERT_EQ(index.size(), d.pairs.size());
  for (size_t i = 0; i < d.pairs.size(); ++i) {
    ASSERT_EQ(unique[index[i].first], d.pairs[i].sentence1);
    ASSERT_EQ(unique[index[i].second], d.pairs[i].sentence2);
  }
}

TEST(UniqueSentencesTest, SharesRepeatedSentencesInFirstSeenOrder) {
  PairDataset d;
  d.pairs = {{"1", "a", "b", 1}, {"2", "b", "c", 0}, {"3", "a", "a", 1}};
  std::vector<std::pair<int, int>> index;
  EXPECT_EQ(UniqueSentences(d, &index), (std::vector<std::string>{"a", "b", "c"}));
  EXPECT_EQ(index, (std::vector<std::pair<int, int>>{{0, 1}, {1, 2}, {0, 0}}));
  EXPECT_EQ(UniqueSentences(d, nullptr).size(), 3u);
}

// ---- generic pair files ------------------------------------------------------------------------

TEST(PairFileTest, TsvWithHeaderAnyColumnOrderAndNoQuoting) {
  const auto dir = TempDir();
  const auto path = WriteFile(dir, "pairs.tsv",
                              "label\textra\tsentence2\tsentence1\n"
                              "1\tx\tHe said \"hi.\tShe said hi.\n"
                              "0.25\ty\tB two\tA one\r\n");
  const PairDataset d = ReadPairFile(path);
  ASSERT_EQ(d.pairs.size(), 2u);
  EXPECT_EQ(d.pairs[0].sentence1, "She said hi.");
  EXPECT_EQ(d.pairs[0].sentence2, "He said \"hi.");
  EXPECT_EQ(d.pairs[0].id, "2");             // no id column: 1-based line number
  EXPECT_EQ(d.pairs[1].sentence1, "A one");  // CRLF stripped
  EXPECT_EQ(d.pairs[1].label, 0.25);
  EXPECT_FALSE(d.binary);
}

TEST(PairFileTest, CsvRfc4180QuotingWithBomAndCustomColumns) {
  const auto dir = TempDir();
  const auto path = WriteFile(dir, "pairs.csv",
                              "\xEF\xBB\xBFpair,a,b,gold\r\n"
                              "p1,\"Hello, world\",\"She said \"\"hi\"\"\",1\r\n"
                              "p2,\"two\nlines\",plain,0\r\n"
                              "p3,,\"\",1\n");
  PairFileOptions o;
  o.sentence1_column = "a";
  o.sentence2_column = "b";
  o.label_column = "gold";
  o.id_column = "pair";
  // Row p3 has empty sentences: strict reading names its line, 5 (p2 spans lines 3-4).
  ExpectRowError<DataError>([&] { ReadPairFile(path, o); }, path, 5, "a is empty");
  o.read.skip_malformed = true;
  const PairDataset d = ReadPairFile(path, o);
  ASSERT_EQ(d.pairs.size(), 2u);
  EXPECT_EQ(d.skipped_rows, 1);
  EXPECT_EQ(d.pairs[0].id, "p1");
  EXPECT_EQ(d.pairs[0].sentence1, "Hello, world");
  EXPECT_EQ(d.pairs[0].sentence2, "She said \"hi\"");
  EXPECT_EQ(d.pairs[1].sentence1, "two\nlines");
  EXPECT_TRUE(d.binary);
}

TEST(PairFileTest, CsvQuotingErrorsNameTheLine) {
  const auto dir = TempDir();
  const auto bare = WriteFile(dir, "bare.csv", "sentence1,sentence2,label\na,b,1\nsay \"x\",b,0\n");
  ExpectRowError<FormatError>([&] { ReadPairFile(bare); }, bare, 3, "unquoted field");
  const auto after = WriteFile(dir, "after.csv", "sentence1,sentence2,label\n\"a\"x,b,1\nc,d,0\n");
  ExpectRowError<FormatError>([&] { ReadPairFile(after); }, after, 2, "after a closing quote");
  // Resynchronises at the next line when skipping.
  PairFileOptions o;
  o.read.skip_malformed = true;
  const PairDataset d = ReadPairFile(after, o);
  ASSERT_EQ(d.pairs.size(), 1u);
  EXPECT_EQ(d.pairs[0].sentence1, "c");
  EXPECT_EQ(d.skipped_rows, 1);
  const auto open = WriteFile(dir, "open.csv", "sentence1,sentence2,label\na,b,1\n\"never,b,1\n");
  ExpectRowError<FormatError>([&] { ReadPairFile(open); }, open, 3, "never closes");
}

TEST(PairFileTest, Jsonl) {
  const auto dir = TempDir();
  const auto path = WriteFile(dir, "pairs.jsonl",
                              "{\"sentence1\": \"caf\\u00e9 \\\"x\", \"sentence2\": \"b\", "
                              "\"label\": 1, \"id\": 17}\n"
                              "{\"sentence1\": \"c\", \"sentence2\": \"d\", \"label\": 0.5, "
                              "\"id\": \"q\", \"other\": [1]}\n");
  const PairDataset d = ReadPairFile(path);
  ASSERT_EQ(d.pairs.size(), 2u);
  EXPECT_EQ(d.pairs[0].sentence1, "caf\xC3\xA9 \"x");
  EXPECT_EQ(d.pairs[0].id, "17");
  EXPECT_EQ(d.pairs[1].id, "q");
  EXPECT_EQ(d.pairs[1].label, 0.5);
  EXPECT_FALSE(d.binary);
}

TEST(PairFileTest, JsonlErrorsNameTheLine) {
  const auto dir = TempDir();
  const std::string good = "{\"sentence1\": \"a\", \"sentence2\": \"b\", \"label\": 1}\n";
  const auto syntax = WriteFile(dir, "syntax.jsonl", good + "{\"sentence1\": \"a\",\n");
  ExpectRowError<FormatError>([&] { ReadPairFile(syntax); }, syntax, 2, "invalid JSON");
  const auto missing = WriteFile(dir, "missing.jsonl", good + good + "{\"sentence1\": \"a\"}\n");
  ExpectRowError<DataError>([&] { ReadPairFile(missing); }, missing, 3, "no key 'sentence2'");
  const auto text_label = WriteFile(
      dir, "text.jsonl", "{\"sentence1\": \"a\", \"sentence2\": \"b\", \"label\": \"1\"}\n");
  ExpectRowError<DataError>([&] { ReadPairFile(text_label); }, text_label, 1, "not a number");
  const auto blank = WriteFile(dir, "blank.jsonl", good + "\n" + good);
  ExpectRowError<FormatError>([&] { ReadPairFile(blank); }, blank, 2, "invalid JSON");
  PairFileOptions o;
  o.read.skip_malformed = true;
  EXPECT_EQ(ReadPairFile(blank, o).skipped_rows, 1);
  EXPECT_EQ(ReadPairFile(blank, o).pairs.size(), 2u);
}

// Issue 10, item 7: a number beyond double (nlohmann out_of_range 406) escaped PairFromJson as a
// raw json exception: no file or line, and skip_malformed did not skip the row.
TEST(PairFileTest, JsonlNumberOverflowIsAFormatErrorNamingTheLineAndIsSkippable) {
  const auto dir = TempDir();
  const std::string good = "{\"sentence1\": \"a\", \"sentence2\": \"b\", \"label\": 1}\n";
  for (const std::string bad :
       {"{\"sentence1\": \"a\", \"sentence2\": \"b\", \"label\": 1e400}",
        "{\"sentence1\": \"a\", \"sentence2\": \"b\", \"x\": -1e999}", "[1e400]"}) {
    const auto path = WriteFile(dir, "overflow.jsonl", good + good + bad + "\n" + good);
    ExpectRowError<FormatError>([&] { ReadPairFile(path); }, path, 3, "number out of range");
    PairFileOptions o;
    o.read.skip_malformed = true;
    const PairDataset d = ReadPairFile(path, o);
    EXPECT_EQ(d.skipped_rows, 1) << bad;
    EXPECT_EQ(d.pairs.size(), 3u) << bad;
  }
}

TEST(PairFileTest, LabelTypeBinaryRejectsOtherLabelsAndScoreIsNeverBinary) {
  const auto dir = TempDir();
  const auto tsv = WriteFile(dir, "b.tsv", "sentence1\tsentence2\tlabel\na\tb\t1\nc\td\t0.5\n");
  const auto jsonl = WriteFile(dir, "b.jsonl",
                               "{\"sentence1\": \"a\", \"sentence2\": \"b\", \"label\": 0}\n"
                               "{\"sentence1\": \"a\", \"sentence2\": \"c\", \"label\": 2}\n");
  PairFileOptions o;
  o.label_type = PairLabelType::kBinary;
  ExpectRowError<DataError>([&] { ReadPairFile(tsv, o); }, tsv, 3, "is not 0 or 1");
  ExpectRowError<DataError>([&] { ReadPairFile(jsonl, o); }, jsonl, 2, "is not 0 or 1");
  const auto zero_one = WriteFile(dir, "z.tsv", "sentence1\tsentence2\tlabel\na\tb\t1\nc\td\t0\n");
  EXPECT_TRUE(ReadPairFile(zero_one, o).binary);
  o.label_type = PairLabelType::kAuto;
  EXPECT_TRUE(ReadPairFile(zero_one, o).binary);
  EXPECT_FALSE(ReadPairFile(tsv, o).binary);
  o.label_type = PairLabelType::kScore;
  EXPECT_FALSE(ReadPairFile(zero_one, o).binary);
}

// Issue 10, item 10: a field quoted in a message shows binary bytes escaped, never raw.
TEST(PairFileTest, MessagesEscapeBinaryBytes) {
  const auto dir = TempDir();
  std::string content = "sentence1\tsentence2\tlabel\na\tb\t1\x01";
  content += '\0';
  content += "\x7f\n";
  const auto path = WriteFile(dir, "nul.tsv", content);
  try {
    ReadPairFile(path);
    ADD_FAILURE() << "no exception";
  } catch (const DataError& e) {
    const std::string msg = e.what();
    EXPECT_NE(msg.find("'1\\x01\\x00\\x7f'"), std::string::npos) << msg;
    EXPECT_EQ(msg.find('\0'), std::string::npos);
    EXPECT_EQ(msg.find('\x01'), std::string::npos);
  }
}

TEST(PairFileTest, LabelsRequiredUnlessAllowed) {
  const auto dir = TempDir();
  const auto tsv = WriteFile(dir, "u.tsv", "sentence1\tsentence2\na\tb\n");
  ExpectRowError<DataError>([&] { ReadPairFile(tsv); }, tsv, 1, "no column 'label'");
  PairFileOptions o;
  o.read.allow_unlabelled = true;
  const PairDataset d = ReadPairFile(tsv, o);
  EXPECT_FALSE(d.has_labels);
  EXPECT_FALSE(d.binary);
  EXPECT_TRUE(std::isnan(d.pairs[0].label));
  const auto jsonl = WriteFile(dir, "u.jsonl",
                               "{\"sentence1\": \"a\", \"sentence2\": \"b\"}\n"
                               "{\"sentence1\": \"a\", \"sentence2\": \"b\", \"label\": 1}\n");
  ExpectRowError<DataError>([&] { ReadPairFile(jsonl, o); }, jsonl, 2, "some rows only");
  EXPECT_THROW(ReadPairFile(WriteFile(dir, "pairs.txt", "x")), UsageError);  // unknown format
  o.format = PairFileFormat::kTsv;
  EXPECT_EQ(
      ReadPairFile(WriteFile(dir, "pairs.txt", "sentence1\tsentence2\nx\ty\n"), o).pairs.size(),
      1u);
}

TEST(PairFileTest, LabelRange) {
  const auto dir = TempDir();
  const auto path = WriteFile(dir, "r.tsv", "sentence1\tsentence2\tlabel\na\tb\t5\nc\td\t5.5\n");
  PairFileOptions o;
  o.label_min = 0;
  o.label_max = 5;
  ExpectRowError<DataError>([&] { ReadPairFile(path, o); }, path, 3, "outside [0, 5]");
  EXPECT_EQ(ReadPairFile(path).pairs.size(), 2u);  // no bounds by default
}

// ---- malformed rows in the fixed formats -------------------------------------------------------

const std::string kMrpcHeader = "\xEF\xBB\xBFQuality\t#1 ID\t#2 ID\t#1 String\t#2 String\n";

TEST(MalformedTest, MrpcRowsNameFileAndLine) {
  const auto dir = TempDir();
  const std::string good = "1\t1\t2\tA.\tB.\n";
  struct Case {
    std::string row;
    bool format;  // FormatError (else DataError)
    std::string what;
  };
  const std::vector<Case> cases = {
      {"1\t1\t2\tonly four\n", true, "expected 5 tab-separated columns, found 4"},
      {"1\t1\t2\tA.\tB.\textra\n", true, "found 6"},
      {"yes\t1\t2\tA.\tB.\n", false, "is not a finite number"},
      {"nan\t1\t2\tA.\tB.\n", false, "is not a finite number"},
      {"2\t1\t2\tA.\tB.\n", false, "is not 0 or 1"},
      {"0.5\t1\t2\tA.\tB.\n", false, "is not 0 or 1"},
      {"1\t1\t2\t \tB.\n", false, "#1 String is empty"},
      {"1\t1\t2\tA.\t\n", false, "#2 String is empty"},
      {"1\t1\t2\tA\xC3(\tB.\n", true, "invalid UTF-8 in #1 String at byte 1"},
      {"1\t1\t2\tA.\t\xED\xA0\x80\n", true, "invalid UTF-8 in #2 String at byte 0"},
      {"\n", true, "found 1"},
  };
  for (size_t i = 0; i < cases.size(); ++i) {
    SCOPED_TRACE(i);
    const auto path = WriteFile(dir, "m" + std::to_string(i) + ".tsv",
                                kMrpcHeader + good + good + cases[i].row + good);
    if (cases[i].format) {
      ExpectRowError<FormatError>([&] { ReadMrpc(path); }, path, 4, cases[i].what);
    } else {
      ExpectRowError<DataError>([&] { ReadMrpc(path); }, path, 4, cases[i].what);
    }
    const PairDataset d = ReadMrpc(path, {.skip_malformed = true});
    EXPECT_EQ(d.pairs.size(), 3u);
    EXPECT_EQ(d.skipped_rows, 1);
  }
}

TEST(MalformedTest, MrpcHeaderAndEmptyFiles) {
  const auto dir = TempDir();
  const auto bad_header = WriteFile(dir, "h.tsv", "Quality\tID1\tID2\tS1\tS2\n1\t1\t2\tA\tB\n");
  ExpectRowError<FormatError>([&] { ReadMrpc(bad_header); }, bad_header, 1, "unexpected header");
  EXPECT_THROW(ReadMrpc(WriteFile(dir, "e.tsv", "")), DataError);
  EXPECT_THROW(ReadMrpc(WriteFile(dir, "only_header.tsv", kMrpcHeader)), DataError);
  // Every row malformed: skipping leaves nothing, which is an error too (not an empty dataset).
  const auto all_bad = WriteFile(dir, "all_bad.tsv", kMrpcHeader + "x\n");
  try {
    ReadMrpc(all_bad, {.skip_malformed = true});
    ADD_FAILURE() << "expected DataError";
  } catch (const DataError& e) {
    EXPECT_NE(std::string(e.what()).find("1 malformed rows skipped"), std::string::npos);
  }
  EXPECT_THROW(ReadMrpc(dir / "absent.tsv"), IoError);
}

TEST(MalformedTest, StsbRowsNameFileAndLine) {
  const auto dir = TempDir();
  const std::string good = "g\tf\t2012\t0001\t3.5\tA.\tB.\n";
  struct Case {
    std::string row;
    bool format;
    std::string what;
  };
  const std::vector<Case> cases = {
      {"g\tf\t2012\t0002\t3.5\tA.\n", true, "expected at least 7"},
      {"g\tf\t2012\t0002\tx\tA.\tB.\n", false, "score 'x' is not a finite number"},
      {"g\tf\t2012\t0002\t5.2\tA.\tB.\n", false, "score 5.2 is outside [0, 5]"},
      {"g\tf\t2012\t0002\t-0.1\tA.\tB.\n", false, "is outside [0, 5]"},
      {"g\tf\t2012\t0002\t1\tA.\t\n", false, "sentence2 is empty"},
      {"g\tf\t2012\t0002\t1\t\xFF\tB.\n", true, "invalid UTF-8 in sentence1"},
  };
  for (size_t i = 0; i < cases.size(); ++i) {
    SCOPED_TRACE(i);
    const auto path = WriteFile(dir, "s" + std::to_string(i) + ".tsv", good + cases[i].row + good);
    if (cases[i].format) {
      ExpectRowError<FormatError>([&] { ReadStsb(path); }, path, 2, cases[i].what);
    } else {
      ExpectRowError<DataError>([&] { ReadStsb(path); }, path, 2, cases[i].what);
    }
    const PairDataset d = ReadStsb(path, {.skip_malformed = true});
    EXPECT_EQ(d.pairs.size(), 2u);
    EXPECT_EQ(d.skipped_rows, 1);
  }
}

TEST(MalformedTest, GenericColumnCountAndUtf8) {
  const auto dir = TempDir();
  const auto path = WriteFile(dir, "c.tsv",
                              "sentence1\tsentence2\tlabel\n"
                              "a\tb\t1\n"
                              "a\tb\n"
                              "a\tb\t1\textra\n"
                              "a\xF4\x90\x80\x80\tb\t1\n"
                              "c\td\t0\n");
  ExpectRowError<FormatError>([&] { ReadPairFile(path); }, path, 3, "expected 3 columns");
  PairFileOptions o;
  o.read.skip_malformed = true;
  const PairDataset d = ReadPairFile(path, o);
  EXPECT_EQ(d.pairs.size(), 2u);
  EXPECT_EQ(d.skipped_rows, 3);
}

bool IsAllValid(std::string_view s) { return FindInvalidUtf8(s) == s.size(); }

TEST(Utf8Test, EscapeForMessageKeepsTextAndEscapesBinary) {
  EXPECT_EQ(EscapeForMessage("plain text"), "plain text");
  EXPECT_EQ(EscapeForMessage("caf\xC3\xA9 \xF0\x9F\x98\x80"), "caf\xC3\xA9 \xF0\x9F\x98\x80");
  EXPECT_EQ(EscapeForMessage(std::string("a\0b", 3)), "a\\x00b");
  EXPECT_EQ(EscapeForMessage("t\tn\nr\r\x1b[31m\x7f"), "t\\tn\\nr\\r\\x1b[31m\\x7f");
  EXPECT_EQ(EscapeForMessage("bad \xC0\xAF \xED\xA0\x80 \xE2\x82"),
            "bad \\xc0\\xaf \\xed\\xa0\\x80 \\xe2\\x82");
  EXPECT_EQ(EscapeForMessage(std::string(10, 'x'), 4), "xxxx\u2026");
  // Never cuts a character in two.
  EXPECT_EQ(EscapeForMessage("ab\xE2\x82\xAC\xE2\x82\xAC", 3), "ab\xE2\x82\xAC\u2026");
  EXPECT_EQ(EscapeForMessage("abc", 3), "abc");
}

TEST(Utf8Test, AcceptsWellFormedAndFindsFirstBadByte) {
  EXPECT_TRUE(IsAllValid(""));
  EXPECT_TRUE(IsAllValid("plain ascii"));
  EXPECT_TRUE(IsAllValid("caf\xC3\xA9 \xE2\x82\xAC \xF0\x9F\x98\x80 \xF4\x8F\xBF\xBF"));
  EXPECT_EQ(FindInvalidUtf8("ab\x80"), 2u);            // stray continuation byte
  EXPECT_EQ(FindInvalidUtf8("a\xC0\xAF"), 1u);         // overlong '/'
  EXPECT_EQ(FindInvalidUtf8("\xE0\x80\xAF"), 0u);      // overlong 3-byte
  EXPECT_EQ(FindInvalidUtf8("x\xED\xA0\x80"), 1u);     // surrogate U+D800
  EXPECT_EQ(FindInvalidUtf8("\xF4\x90\x80\x80"), 0u);  // above U+10FFFF
  EXPECT_EQ(FindInvalidUtf8("ok\xE2\x82"), 2u);        // truncated
  EXPECT_EQ(FindInvalidUtf8("\xF0\x9F\x98("), 0u);     // bad continuation
}

}  // namespace
}  // namespace rwkv_embed
