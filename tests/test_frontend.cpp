// The front-end library shared by levattn and levattn-mpi (tools/frontend): exit codes, the CSV of
// heavy entries, outputs written all-or-nothing, the --json summaries and the shared arguments.
#include <gtest/gtest.h>

#include <cstdio>
#include <filesystem>
#include <new>
#include <string>

#include "arguments.hpp"
#include "exit_codes.hpp"
#include "heavy_csv.hpp"
#include "io_test_helpers.hpp"
#include "levattn/core/error.hpp"
#include "summaries.hpp"
#include "text_output.hpp"

namespace levattn::cli {
namespace {

template <class Exception>
Failure failure_of(const Exception& e) {
  try {
    throw e;
  } catch (const std::exception&) {
    return current_failure();
  }
}

TEST(ExitCodes, EachExceptionMapsToItsCodeAndMessage) {
  const Failure usage = failure_of(UsageError("--output must end in .npy"));
  EXPECT_EQ(usage.exit_code, 2);
  EXPECT_EQ(usage.message, "--output must end in .npy");
  const Failure bad = failure_of(Error(ErrorKind::bad_input, "keys: row 3 holds a NaN"));
  EXPECT_EQ(bad.exit_code, 3);
  EXPECT_EQ(bad.message, "keys: row 3 holds a NaN");
  EXPECT_EQ(failure_of(Error(ErrorKind::failure, "disk full")).exit_code, 1);
  const Failure memory = failure_of(std::bad_alloc());
  EXPECT_EQ(memory.exit_code, 1);
  EXPECT_EQ(memory.message, "out of memory");
  EXPECT_EQ(failure_of(std::logic_error("bug")).exit_code, 1);
}

TEST(ExitCodes, ThrowFailureGivesBackTheSameFailure) {
  for (const Failure& f : {Failure{2, "usage"}, Failure{3, "bad input"}, Failure{1, "failure"}}) {
    try {
      throw_failure(f);
    } catch (const std::exception&) {
      const Failure back = current_failure();
      EXPECT_EQ(back.exit_code, f.exit_code);
      EXPECT_EQ(back.message, f.message);
    }
  }
}

// What write calls into a stream, as text.
template <class Write>
std::string written(Write write) {
  std::FILE* f = std::tmpfile();
  write(f);
  std::rewind(f);
  std::string text;
  for (int c = std::fgetc(f); c != EOF; c = std::fgetc(f)) text.push_back(static_cast<char>(c));
  std::fclose(f);
  return text;
}

TEST(HeavyCsv, HeaderAndRowsInEveryColumnLayout) {
  const HeavyEntry e{12, 3456789012345, 0.1234567891234};
  EXPECT_EQ(written([&](std::FILE* f) {
              write_heavy_csv_header(f, {});
              write_heavy_csv_row(f, {}, e, 7, true);
            }),
            "query,key,score\n12,3456789012345,0.123456789\n");
  EXPECT_EQ(written([&](std::FILE* f) {
              write_heavy_csv_header(f, {.head = true, .estimated = true});
              write_heavy_csv_row(f, {.head = true, .estimated = true}, e, 7, true);
              write_heavy_csv_row(f, {.head = true, .estimated = true}, {0, 1, 1.0}, 0, false);
            }),
            "head,query,key,score,estimated\n7,12,3456789012345,0.123456789,1\n0,0,1,1,0\n");
  EXPECT_EQ(written([&](std::FILE* f) {
              write_heavy_csv_header(f, {.head = false, .estimated = true});
              write_heavy_csv_row(f, {.head = false, .estimated = true}, {1, 2, 2.5e-10}, 9, false);
            }),
            "query,key,score,estimated\n1,2,2.5e-10,0\n");
}

TEST(TextOutput, TheFileAppearsWholeOnFinishAndNotWithout) {
  const test::TempDir dir("levattn_frontend_");
  const std::string path = dir.file("entries.csv");
  {
    TextOutput out(path);
    std::fputs("query,key,score\n", out.stream());
    EXPECT_FALSE(std::filesystem::exists(path));
    out.finish("the entries");
  }
  EXPECT_EQ(test::read_file(path), "query,key,score\n");
  const std::string abandoned = dir.file("abandoned.csv");
  {
    TextOutput out(abandoned);
    std::fputs("partial", out.stream());
  }
  EXPECT_FALSE(std::filesystem::exists(abandoned));
  EXPECT_EQ(dir.entries(), std::vector<std::string>{"entries.csv"});  // no temporary left behind
}

TEST(TextOutput, AnEmptyPathIsStandardOutput) {
  TextOutput out("");
  EXPECT_EQ(out.stream(), stdout);
}

TEST(Summaries, UniversalSetFieldsCarryTheRuleGiven) {
  UniversalSetSummary s{
      .n = 100, .d = 8, .eps = 0.25, .top_k = {}, .size = 5, .bound = 32.0, .within_bound = true, .output = "u.npy"};
  EXPECT_EQ(universal_set_summary_json("select", s).dump(),
            R"({"bound":32.0,"command":"select","d":8,"eps":0.25,"n":100,"output":"u.npy",)"
            R"("universal_set_size":5,"within_bound":true})");
  s.eps.reset();
  s.top_k = 5;
  const nlohmann::json j = universal_set_summary_json("stream", s);
  EXPECT_FALSE(j.contains("eps"));
  EXPECT_EQ(j["top_k"], 5);
  EXPECT_EQ(j["command"], "stream");
}

TEST(Summaries, HeavyFields) {
  const HeavySummary s{.n = 1000,
                       .m = 10,
                       .d = 4,
                       .heads = 2,
                       .eps = 0.5,
                       .p = 2.0,
                       .universal_set_size = 6,
                       .bound = 16.0,
                       .scanned_keys = 7,
                       .searched_queries = 20,
                       .heavy_count = 11,
                       .zero_queries = 1,
                       .fallback_queries = 2,
                       .rechecked = 3,
                       .output = "h.csv"};
  EXPECT_EQ(heavy_summary_json(s).dump(),
            R"({"bound":16.0,"command":"heavy","d":4,"eps":0.5,"fallback_queries":2,"heads":2,)"
            R"("heavy_count":11,"m":10,"n":1000,"output":"h.csv","p":2.0,"rechecked":3,"scanned_keys":7,)"
            R"("universal_set_size":6,"zero_queries":1})");
}

// Parses `args` (after the program name) with the select arguments registered on a subcommand.
bool parses(std::vector<std::string> args, SelectArguments& a) {
  CLI::App app("test");
  CLI::App* c = app.add_subcommand("select");
  add_select_arguments(*c, a, "keys", "output");
  args.insert(args.begin(), "select");
  std::vector<const char*> argv{"levattn"};
  for (const std::string& s : args) argv.push_back(s.c_str());
  try {
    app.parse(static_cast<int>(argv.size()), argv.data());
    return true;
  } catch (const CLI::ParseError&) {
    return false;
  }
}

TEST(SelectArguments, ExactlyOneOfEpsAndTopK) {
  SelectArguments a;
  EXPECT_EQ(a.rcond, kDefaultRcond);
  ASSERT_TRUE(parses({"--keys", "k.npy", "--eps", "0.1", "--output", "u.npy", "--threads", "2"}, a));
  EXPECT_EQ(a.keys, "k.npy");
  EXPECT_EQ(a.output, "u.npy");
  EXPECT_EQ(a.eps, 0.1);
  EXPECT_FALSE(a.top_k);
  EXPECT_EQ(a.common.threads, 2);
  SelectArguments b;
  ASSERT_TRUE(parses({"--keys", "k.npy", "--top-k", "4", "--output", "u.npy", "--json", "--rcond", "1e-5"}, b));
  EXPECT_EQ(b.top_k, 4);
  EXPECT_EQ(b.rcond, 1e-5);
  EXPECT_TRUE(b.common.json);
  SelectArguments c, d, e;
  EXPECT_FALSE(parses({"--keys", "k.npy", "--output", "u.npy"}, c));
  EXPECT_FALSE(parses({"--keys", "k.npy", "--eps", "0.1", "--top-k", "4", "--output", "u.npy"}, d));
  EXPECT_FALSE(parses({"--eps", "0.1", "--output", "u.npy"}, e));
}

}  // namespace
}  // namespace levattn::cli
