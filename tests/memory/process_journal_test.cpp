// The process journal on real SQLite files: transcripts appended in batches and read back after
// reopening, tool results recorded once, checkpoints and restore, the live processes a restarted
// daemon resumes, a compacted context replacing the transcript (and older files upgraded for it),
// self-contained checkpoints that outlive a compaction, and the faults: a full file (nothing
// half-written), a lock held by another connection, a file that is not a database, a newer schema,
// damaged rows.
#include "memory/process_journal.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <fstream>
#include <numeric>

#include "tests/memory/temp_dir.h"

namespace icam::memory {
namespace {

using ::testing::HasSubstr;
using testing::TempDir;

std::unique_ptr<ProcessJournal> open_ok(const std::string& path, JournalOptions options = {}) {
  auto j = ProcessJournal::open(path, options);
  EXPECT_TRUE(j.ok()) << j.error().message();
  return j.ok() ? std::move(*j) : nullptr;
}

PageHash hash_of(uint8_t seed) {
  PageHash h{};
  for (size_t i = 0; i < h.size(); ++i) h[i] = static_cast<uint8_t>(seed * 31 + i);
  return h;
}

template <typename T>
Errc code_of(const T& result) {
  return result.ok() ? Errc::internal : result.error().code();
}

TEST(ProcessJournal, RecordsAProcessAndReadsItBackAfterReopening) {
  TempDir dir;
  const std::string path = dir.path() + "/journal.db";
  const std::vector<int32_t> prompt = {2, 105, 2364, 107, 0, -1, 262143};
  const std::vector<PageHash> pages = {hash_of(1), hash_of(2)};
  int64_t cp = 0;
  {
    auto j = open_ok(path);
    ASSERT_TRUE(j);
    ASSERT_TRUE(j->begin_process(3, R"({"name":"writer","task":"t"})", 1000).ok());
    ASSERT_TRUE(j->append_tokens(3, prompt).ok());
    ASSERT_TRUE(j->set_state(3, "running").ok());
    ASSERT_TRUE(j->append_step(std::vector<StepAppend>{{3, std::vector<int32_t>{7, 8}, pages}}).ok());
    ASSERT_TRUE(
        j->record_tool_result(3, 0, "fs.read", R"({"path":"a"})", "hello").ok());
    cp = *j->checkpoint(3, "after-read");
    ASSERT_TRUE(j->append_tokens(3, std::vector<int32_t>{9}).ok());
    ASSERT_TRUE(j->set_state(3, "blocked").ok());
  }
  auto j = open_ok(path, {.read_only = true});
  ASSERT_TRUE(j);
  auto p = j->load(3);
  ASSERT_TRUE(p.ok()) << p.error().message();
  std::vector<int32_t> expected = prompt;
  expected.insert(expected.end(), {7, 8, 9});
  EXPECT_EQ(p->transcript, expected);
  EXPECT_EQ(p->page_table, pages);
  EXPECT_EQ(p->job, R"({"name":"writer","task":"t"})");
  EXPECT_EQ(p->owner_uid, 1000u);
  EXPECT_EQ(p->state, "blocked");
  ASSERT_EQ(p->tool_results.size(), 1u);
  EXPECT_EQ(p->tool_results[0].name, "fs.read");
  EXPECT_EQ(p->tool_results[0].result, "hello");
  EXPECT_EQ(p->tool_results[0].at_token, 9);
  ASSERT_EQ(p->checkpoints.size(), 1u);
  EXPECT_EQ(p->checkpoints[0].id, cp);
  EXPECT_EQ(p->checkpoints[0].label, "after-read");
  EXPECT_EQ(p->checkpoints[0].tokens, 9);
  EXPECT_EQ(p->checkpoints[0].tool_calls, 1);
  // Listings leave the checkpoint's copies out.
  EXPECT_TRUE(p->checkpoints[0].transcript.empty());
  EXPECT_TRUE(p->checkpoints[0].tool_results.empty());

  auto restored = j->restore(3, cp);
  ASSERT_TRUE(restored.ok()) << restored.error().message();
  EXPECT_EQ(restored->tokens, 9);
  EXPECT_EQ(restored->page_table, pages);
  EXPECT_EQ(restored->transcript, std::vector<int32_t>(expected.begin(), expected.begin() + 9));
  ASSERT_EQ(restored->tool_results.size(), 1u);
  EXPECT_EQ(restored->tool_results[0].name, "fs.read");
  EXPECT_EQ(restored->tool_results[0].arguments, R"({"path":"a"})");
  EXPECT_EQ(restored->tool_results[0].result, "hello");
  EXPECT_EQ(restored->tool_results[0].at_token, 9);
  EXPECT_EQ(code_of(j->restore(3, cp + 1)), Errc::not_found);
  EXPECT_EQ(code_of(j->restore(4, cp)), Errc::not_found);  // another process's id
  // Read-only: no writes.
  EXPECT_EQ(code_of(j->append_tokens(3, std::vector<int32_t>{1})), Errc::permission_denied);
}

TEST(ProcessJournal, PruningForgetsOldExitsButCheckpointsAndTheNewest) {
  TempDir dir;
  auto j = open_ok(dir.path() + "/journal.db");
  ASSERT_TRUE(j);
  // Ten processes, exited in pid order, but 4 (which holds a checkpoint) and 9 (still live).
  for (uint64_t pid = 1; pid <= 10; ++pid) {
    ASSERT_TRUE(j->begin_process(pid, "{}", 0, std::vector<int32_t>{1, 2, 3}).ok());
    if (pid == 4) {
      ASSERT_TRUE(j->checkpoint(4, "keep").ok());
    }
    if (pid != 9) {
      ASSERT_TRUE(j->exit(pid, R"({"reason":"completed"})").ok());
    }
  }
  auto removed = j->prune_exited(3);
  ASSERT_TRUE(removed.ok()) << removed.error().message();
  // Kept: the three newest exits (10, 8, 7), the checkpointed 4 and the live 9.
  EXPECT_EQ(*removed, 5);
  for (uint64_t pid : {1, 2, 3, 5, 6}) EXPECT_EQ(code_of(j->load(pid)), Errc::not_found) << pid;
  for (uint64_t pid : {4, 7, 8, 9, 10}) EXPECT_TRUE(j->load(pid).ok()) << pid;
  EXPECT_EQ(*j->max_pid(), 10u);
  EXPECT_EQ(j->live_processes()->size(), 1u);
  // Keeping none still keeps the newest process, so pids never go back.
  ASSERT_TRUE(j->exit(9, R"({"reason":"completed"})").ok());
  EXPECT_EQ(*j->prune_exited(0), 3);  // 7, 8, 9; 4 has a checkpoint, 10 is the newest
  EXPECT_EQ(*j->max_pid(), 10u);
  EXPECT_EQ(j->summaries()->size(), 2u);
}

TEST(ProcessJournal, LiveProcessesAreWhatARestartResumes) {
  TempDir dir;
  auto j = open_ok(dir.path() + "/journal.db");
  ASSERT_TRUE(j);
  for (uint64_t pid : {1, 2, 5}) ASSERT_TRUE(j->begin_process(pid, "{}", 0).ok());
  ASSERT_TRUE(j->exit(2, R"({"reason":"completed"})").ok());
  auto live = j->live_processes();
  ASSERT_TRUE(live.ok());
  ASSERT_EQ(live->size(), 2u);
  EXPECT_EQ((*live)[0].pid, 1u);
  EXPECT_EQ((*live)[1].pid, 5u);
  EXPECT_EQ(*j->max_pid(), 5u);
  EXPECT_EQ(j->load(2)->exit, R"({"reason":"completed"})");
  // Nothing is appended to an exited process, nor begun twice.
  EXPECT_EQ(code_of(j->append_tokens(2, std::vector<int32_t>{1})), Errc::invalid_argument);
  EXPECT_EQ(code_of(j->set_state(2, "running")), Errc::invalid_argument);
  EXPECT_EQ(code_of(j->begin_process(1, "{}", 0)), Errc::invalid_argument);
  EXPECT_EQ(code_of(j->append_tokens(9, std::vector<int32_t>{1})), Errc::not_found);
  EXPECT_EQ(code_of(j->begin_process(7, "not json", 0)), Errc::invalid_argument);
  EXPECT_EQ(code_of(j->exit(1, "{")), Errc::invalid_argument);
  // Forgetting is for exited processes.
  EXPECT_EQ(code_of(j->forget(1)), Errc::invalid_argument);
  ASSERT_TRUE(j->forget(2).ok());
  EXPECT_EQ(code_of(j->load(2)), Errc::not_found);
}

TEST(ProcessJournal, AToolResultIsRecordedOnceAndFoundOnResume) {
  TempDir dir;
  auto j = open_ok(dir.path() + "/journal.db");
  ASSERT_TRUE(j);
  ASSERT_TRUE(j->begin_process(1, "{}", 0).ok());
  ASSERT_TRUE(j->record_tool_result(1, 0, "exec.run", R"({"argv":["/bin/rm","x"]})",
                                    R"({"exit_code":0})")
                  .ok());
  auto again = j->record_tool_result(1, 0, "exec.run", "{}", "other");
  ASSERT_FALSE(again.ok());
  EXPECT_EQ(again.error().code(), Errc::invalid_argument);
  EXPECT_THAT(again.error().message(), HasSubstr("recorded already"));
  auto found = j->tool_result(1, 0);
  ASSERT_TRUE(found.ok());
  ASSERT_TRUE(found->has_value());
  EXPECT_EQ((*found)->result, R"({"exit_code":0})");  // the first, untouched
  auto missing = j->tool_result(1, 1);
  ASSERT_TRUE(missing.ok());
  EXPECT_FALSE(missing->has_value());
}

TEST(ProcessJournal, WhatTheKernelNeedsToResumeAndRestore) {
  TempDir dir;
  auto j = open_ok(dir.path() + "/journal.db");
  ASSERT_TRUE(j);
  ASSERT_TRUE(j->check_writable().ok());
  // Begun with its prompt in the same transaction.
  const std::vector<int32_t> prompt = {1, 2, 3};
  ASSERT_TRUE(j->begin_process(4, R"({"name":"a"})", 1000, prompt).ok());
  ASSERT_TRUE(j->append_tokens(4, std::vector<int32_t>{7, 8}).ok());
  // A result at an explicit position (a restored copy), not past the transcript.
  ASSERT_TRUE(j->record_tool_result(4, 0, "kv.get", "{}", "r0", 4).ok());
  EXPECT_EQ(code_of(j->record_tool_result(4, 1, "kv.get", "{}", "r1", 6)), Errc::invalid_argument);
  ASSERT_TRUE(j->record_tool_result(4, 1, "kv.get", "{}", "r1").ok());
  auto p = j->load(4);
  ASSERT_TRUE(p.ok());
  EXPECT_EQ(p->transcript, (std::vector<int32_t>{1, 2, 3, 7, 8}));
  ASSERT_EQ(p->tool_results.size(), 2u);
  EXPECT_EQ(p->tool_results[0].at_token, 4);
  EXPECT_EQ(p->tool_results[1].at_token, 5);
  // Checkpoints found by id and by label (the newest of a label).
  auto first = j->checkpoint(4, "x");
  auto second = j->checkpoint(4, "x");
  ASSERT_TRUE(first.ok() && second.ok());
  EXPECT_EQ(*j->checkpoint_pid(*first), 4u);
  EXPECT_EQ(*j->find_checkpoint(4, "x"), *second);
  EXPECT_EQ(code_of(j->find_checkpoint(4, "y")), Errc::not_found);
  EXPECT_EQ(code_of(j->checkpoint_pid(*second + 1)), Errc::not_found);
  // Exit records, oldest first, at most `limit`.
  ASSERT_TRUE(j->begin_process(5, "{}", 1000).ok());
  ASSERT_TRUE(j->begin_process(6, "{}", 1000).ok());
  ASSERT_TRUE(j->exit(5, R"({"pid":5})").ok());
  ASSERT_TRUE(j->exit(6, R"({"pid":6})").ok());
  auto exits = j->exit_records(10);
  ASSERT_TRUE(exits.ok());
  ASSERT_EQ(exits->size(), 2u);
  EXPECT_EQ((*exits)[0].first, 5u);
  EXPECT_EQ((*exits)[1].second, R"({"pid":6})");
  auto last = j->exit_records(1);
  ASSERT_TRUE(last.ok());
  ASSERT_EQ(last->size(), 1u);
  EXPECT_EQ((*last)[0].first, 6u);
}

TEST(ProcessJournal, OneStepForManyProcessesIsOneTransaction) {
  TempDir dir;
  auto j = open_ok(dir.path() + "/journal.db");
  ASSERT_TRUE(j);
  constexpr int kProcesses = 32, kSteps = 50;
  for (int p = 1; p <= kProcesses; ++p) ASSERT_TRUE(j->begin_process(p, "{}", 0).ok());
  for (int step = 0; step < kSteps; ++step) {
    std::vector<std::vector<int32_t>> tokens(kProcesses);
    std::vector<StepAppend> batch;
    for (int p = 1; p <= kProcesses; ++p) {
      tokens[p - 1] = {p * 1000 + step};
      batch.push_back({static_cast<uint64_t>(p), tokens[p - 1], {}});
    }
    ASSERT_TRUE(j->append_step(batch).ok());
  }
  auto st = j->stats();
  ASSERT_TRUE(st.ok());
  EXPECT_EQ(st->processes, kProcesses);
  EXPECT_EQ(st->live, kProcesses);
  EXPECT_EQ(st->tokens, kProcesses * kSteps);
  EXPECT_EQ(st->transcript_rows, kProcesses * kSteps);
  EXPECT_GT(st->file_bytes, 0);
  auto p7 = j->load(7);
  ASSERT_TRUE(p7.ok());
  ASSERT_EQ(p7->transcript.size(), size_t{kSteps});
  EXPECT_EQ(p7->transcript[10], 7010);

  // A step naming an exited process fails whole: no process of it advances.
  ASSERT_TRUE(j->exit(5, "{}").ok());
  const std::vector<int32_t> one = {1};
  const std::vector<StepAppend> bad = {{1, one, {}}, {5, one, {}}, {6, one, {}}};
  auto failed = j->append_step(bad);
  ASSERT_FALSE(failed.ok());
  EXPECT_THAT(failed.error().message(), HasSubstr("process 5"));
  EXPECT_EQ(j->load(1)->transcript.size(), size_t{kSteps});
  EXPECT_EQ(j->load(6)->transcript.size(), size_t{kSteps});

  auto rows = j->summaries();
  ASSERT_TRUE(rows.ok());
  ASSERT_EQ(rows->size(), size_t{kProcesses});
  EXPECT_EQ((*rows)[4].state, "exited");
  EXPECT_EQ((*rows)[0].tokens, kSteps);
}

TEST(ProcessJournal, AFullFileRefusesTheWriteAndKeepsEverythingBefore) {
  TempDir dir;
  JournalOptions options;
  options.max_pages = 24;  // a few pages past the empty schema: a disk about to fill up
  auto j = open_ok(dir.path() + "/journal.db", options);
  ASSERT_TRUE(j);
  ASSERT_TRUE(j->begin_process(1, "{}", 0).ok());
  ASSERT_TRUE(j->begin_process(2, "{}", 0).ok());
  std::vector<int32_t> chunk(500);
  std::iota(chunk.begin(), chunk.end(), 100000);
  Status last = ok_status();
  int64_t committed = 0;
  for (int i = 0; i < 1000 && last.ok(); ++i) {
    last = j->append_step(std::vector<StepAppend>{{1, chunk, {}}, {2, chunk, {}}});
    if (last.ok()) committed += static_cast<int64_t>(chunk.size());
  }
  ASSERT_FALSE(last.ok()) << "the bound was never reached";
  EXPECT_EQ(last.error().code(), Errc::resource_exhausted) << last.error().message();
  EXPECT_THAT(last.error().message(), HasSubstr("journal '"));
  // Both processes hold exactly the committed steps, consistent row by row.
  for (uint64_t pid : {1, 2}) {
    auto p = j->load(pid);
    ASSERT_TRUE(p.ok()) << p.error().message();
    EXPECT_EQ(static_cast<int64_t>(p->transcript.size()), committed);
  }
  // Small writes that fit still work after the refusal.
  EXPECT_TRUE(j->set_state(1, "running").ok());
}

TEST(ProcessJournal, ALockedFileIsUnavailable) {
  TempDir dir;
  const std::string path = dir.path() + "/journal.db";
  auto j = open_ok(path, {.busy_timeout_ms = 0});
  ASSERT_TRUE(j);
  ASSERT_TRUE(j->begin_process(1, "{}", 0).ok());
  auto other = sqlite::Database::open(path, false);
  ASSERT_TRUE(other.ok());
  ASSERT_TRUE(other->exec("BEGIN EXCLUSIVE").ok());
  auto locked = j->append_tokens(1, std::vector<int32_t>{1, 2});
  ASSERT_FALSE(locked.ok());
  EXPECT_EQ(locked.error().code(), Errc::unavailable);
  EXPECT_THAT(locked.error().message(), HasSubstr(path));
  ASSERT_TRUE(other->exec("ROLLBACK").ok());
  ASSERT_TRUE(j->append_tokens(1, std::vector<int32_t>{1, 2}).ok());
  EXPECT_EQ(j->load(1)->transcript, (std::vector<int32_t>{1, 2}));
}

TEST(ProcessJournal, ACompactedContextReplacesTheTranscriptInOneTransaction) {
  TempDir dir;
  const std::string path = dir.path() + "/journal.db";
  auto j = open_ok(path);
  ASSERT_TRUE(j);
  // Prompt 0..3, turn 0 (4, 5) and its message (6, 7), turn 1 (8) and its message (9, 10).
  ASSERT_TRUE(j->begin_process(1, "{}", 0, std::vector<int32_t>{0, 1, 2, 3}).ok());
  ASSERT_TRUE(j->append_tokens(1, std::vector<int32_t>{4, 5}).ok());
  ASSERT_TRUE(j->record_tool_result(1, 0, "a", "{}", "r0").ok());
  ASSERT_TRUE(j->append_tokens(1, std::vector<int32_t>{6, 7, 8}).ok());
  ASSERT_TRUE(j->record_tool_result(1, 1, "b", "{}", "r1").ok());
  ASSERT_TRUE(j->append_tokens(1, std::vector<int32_t>{9, 10}).ok());
  ASSERT_TRUE(j->append_pages(1, std::vector<PageHash>{hash_of(1)}).ok());
  const auto before = j->checkpoint(1, "before");
  ASSERT_TRUE(before.ok()) << before.error().message();

  // Turn 0 moves out; a two-token marker (90, 91) stands for it; turn 1 moves 8 - 6 = 2 back.
  JournalContext c{.compactions = 1, .calls = 1, .start = 6, .generated = 2, .appended = 2,
                   .turns = 1};
  const std::vector<int32_t> compacted = {0, 1, 2, 3, 90, 91, 8, 9, 10};
  // A kept result that would land outside the new transcript: nothing changes.
  EXPECT_EQ(code_of(j->replace_context(1, compacted, c, 100)), Errc::invalid_argument);
  JournalContext past = c;
  past.start = 10;
  EXPECT_EQ(code_of(j->replace_context(1, compacted, past, 2)), Errc::invalid_argument);
  {
    auto p = j->load(1);
    ASSERT_TRUE(p.ok());
    EXPECT_EQ(p->transcript.size(), 11u);
    EXPECT_FALSE(p->context.compacted());
    EXPECT_EQ(p->checkpoints.size(), 1u);
  }
  ASSERT_TRUE(j->replace_context(1, compacted, c, 2).ok());
  ASSERT_TRUE(j->append_tokens(1, std::vector<int32_t>{11}).ok());
  j.reset();
  j = open_ok(path);
  auto p = j->load(1);
  ASSERT_TRUE(p.ok()) << p.error().message();
  EXPECT_EQ(p->transcript, (std::vector<int32_t>{0, 1, 2, 3, 90, 91, 8, 9, 10, 11}));
  EXPECT_EQ(to_json_text(p->context), to_json_text(c));
  ASSERT_EQ(p->tool_results.size(), 2u);
  EXPECT_EQ(p->tool_results[1].at_token, 7);  // was 9
  EXPECT_TRUE(p->page_table.empty());  // the pages of the old context are not this one's
  // The checkpoint taken before holds its own transcript and results: it restores as it was.
  ASSERT_EQ(p->checkpoints.size(), 1u);
  {
    auto old = j->restore(1, *before);
    ASSERT_TRUE(old.ok()) << old.error().message();
    EXPECT_EQ(old->transcript, (std::vector<int32_t>{0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10}));
    EXPECT_FALSE(old->context.compacted());
    EXPECT_EQ(old->page_table, std::vector<PageHash>{hash_of(1)});
    ASSERT_EQ(old->tool_results.size(), 2u);
    EXPECT_EQ(old->tool_results[0].result, "r0");
    EXPECT_EQ(old->tool_results[0].at_token, 6);
    EXPECT_EQ(old->tool_results[1].result, "r1");
    EXPECT_EQ(old->tool_results[1].at_token, 9);  // where it was then, not the shifted 7
  }
  // A checkpoint now carries the compaction with it.
  auto id = j->checkpoint(1, "after");
  ASSERT_TRUE(id.ok());
  auto restored = j->restore(1, *id);
  ASSERT_TRUE(restored.ok());
  EXPECT_EQ(restored->context.compactions, 1);
  EXPECT_EQ(restored->transcript, (std::vector<int32_t>{0, 1, 2, 3, 90, 91, 8, 9, 10, 11}));
  ASSERT_EQ(restored->tool_results.size(), 2u);
  EXPECT_EQ(restored->tool_results[1].at_token, 7);
  // A second compaction keeps both.
  JournalContext twice = c;
  twice.compactions = 2;
  twice.calls = 2;
  twice.start = 6;
  ASSERT_TRUE(j->replace_context(1, std::vector<int32_t>{0, 1, 2, 3, 92, 93, 11}, twice, 3).ok());
  EXPECT_EQ(j->load(1)->checkpoints.size(), 2u);
  EXPECT_EQ(j->restore(1, *before)->transcript.size(), 11u);
  EXPECT_EQ(j->restore(1, *id)->transcript.size(), 10u);
  EXPECT_EQ(j->restore(1, *id)->tool_results[1].at_token, 7);
  ASSERT_TRUE(j->exit(1, "{}").ok());
  EXPECT_EQ(code_of(j->replace_context(1, compacted, c, 0)), Errc::invalid_argument);
  EXPECT_EQ(code_of(j->replace_context(2, compacted, c, 0)), Errc::not_found);
}

TEST(ProcessJournal, AVersionOneFileIsReadAndUpgraded) {
  TempDir dir;
  const std::string path = dir.path() + "/journal.db";
  {
    auto j = open_ok(path);
    ASSERT_TRUE(j);
    ASSERT_TRUE(j->begin_process(1, "{}", 0, std::vector<int32_t>{1, 2}).ok());
    ASSERT_TRUE(j->checkpoint(1, "c").ok());
  }
  {
    // As a journal written before compactions (and self-contained checkpoints) was.
    auto db = sqlite::Database::open(path, false);
    ASSERT_TRUE(db.ok());
    ASSERT_TRUE(db->exec("DROP TABLE checkpoint_results").ok());
    ASSERT_TRUE(db->exec("ALTER TABLE checkpoints DROP COLUMN transcript").ok());
    ASSERT_TRUE(db->exec("ALTER TABLE processes DROP COLUMN context").ok());
    ASSERT_TRUE(db->exec("ALTER TABLE checkpoints DROP COLUMN context").ok());
    ASSERT_TRUE(db->exec("PRAGMA user_version=1").ok());
  }
  {
    auto j = open_ok(path, {.read_only = true});
    ASSERT_TRUE(j);
    auto p = j->load(1);
    ASSERT_TRUE(p.ok()) << p.error().message();
    EXPECT_FALSE(p->context.compacted());
    ASSERT_EQ(p->checkpoints.size(), 1u);
    EXPECT_EQ(j->restore(1, p->checkpoints[0].id)->transcript, (std::vector<int32_t>{1, 2}));
  }
  auto j = open_ok(path);
  ASSERT_TRUE(j);
  ASSERT_TRUE(
      j->replace_context(1, std::vector<int32_t>{1, 2, 3}, JournalContext{.compactions = 1, .start = 3}, 0)
          .ok());
  auto p = j->load(1);
  ASSERT_TRUE(p.ok()) << p.error().message();
  EXPECT_EQ(p->context.compactions, 1);
  EXPECT_EQ(p->transcript, (std::vector<int32_t>{1, 2, 3}));
  // Upgraded to self-contained (version 3): its checkpoint outlived the compaction.
  ASSERT_EQ(p->checkpoints.size(), 1u);
  EXPECT_EQ(j->restore(1, p->checkpoints[0].id)->transcript, (std::vector<int32_t>{1, 2}));
}

// A checkpoint's data as restore() gives it, to compare two restores.
std::string restored_text(ProcessJournal& j, uint64_t pid, int64_t id) {
  auto c = j.restore(pid, id);
  if (!c.ok()) return "error: " + c.error().message();
  std::string out = c->label + " " + std::to_string(c->tokens) + " " +
                    std::to_string(c->tool_calls) + " " + to_json_text(c->context) + " [";
  for (int32_t t : c->transcript) out += std::to_string(t) + " ";
  out += "]";
  for (const auto& r : c->tool_results)
    out += str_cat(" (", r.call_index, " ", r.name, " ", r.arguments, " ", r.result, " ",
                   r.at_token, ")");
  return out;
}

TEST(ProcessJournal, AVersionTwoFileWithCheckpointsIsReadAndUpgraded) {
  TempDir dir;
  const std::string path = dir.path() + "/journal.db";
  std::vector<std::pair<uint64_t, int64_t>> checkpoints;
  std::vector<std::string> expected;
  {
    auto j = open_ok(path);
    ASSERT_TRUE(j);
    // Process 1, never compacted: a checkpoint after each call.
    ASSERT_TRUE(j->begin_process(1, "{}", 0, std::vector<int32_t>{0, 1, 2}).ok());
    ASSERT_TRUE(j->append_tokens(1, std::vector<int32_t>{3, 4}).ok());
    ASSERT_TRUE(j->record_tool_result(1, 0, "a", R"({"x":1})", "r0").ok());
    ASSERT_TRUE(j->append_tokens(1, std::vector<int32_t>{5, 6}).ok());
    checkpoints.emplace_back(1, *j->checkpoint(1, "one"));
    ASSERT_TRUE(j->append_tokens(1, std::vector<int32_t>{7}).ok());
    ASSERT_TRUE(j->record_tool_result(1, 1, "b", "{}", "r1").ok());
    ASSERT_TRUE(j->append_tokens(1, std::vector<int32_t>{8, 9}).ok());
    checkpoints.emplace_back(1, *j->checkpoint(1, "two"));
    ASSERT_TRUE(j->append_tokens(1, std::vector<int32_t>{10}).ok());
    // Process 2, compacted (call 0 moved out, its position stale) and then checkpointed, as a
    // version-2 journal could hold one.
    ASSERT_TRUE(j->begin_process(2, "{}", 0, std::vector<int32_t>{0, 1, 2}).ok());
    ASSERT_TRUE(j->append_tokens(2, std::vector<int32_t>{3, 4, 5, 6, 7, 8}).ok());
    ASSERT_TRUE(j->record_tool_result(2, 0, "a", "{}", "moved").ok());
    ASSERT_TRUE(j->append_tokens(2, std::vector<int32_t>{9}).ok());
    ASSERT_TRUE(j->record_tool_result(2, 1, "b", "{}", "kept").ok());
    ASSERT_TRUE(j->append_tokens(2, std::vector<int32_t>{10, 11}).ok());
    JournalContext c{.compactions = 1, .calls = 1, .start = 4, .generated = 6, .appended = 0,
                     .turns = 1};
    ASSERT_TRUE(j->replace_context(2, std::vector<int32_t>{0, 1, 2, 90, 9, 10, 11}, c, 6).ok());
    checkpoints.emplace_back(2, *j->checkpoint(2, "compacted"));
    for (const auto& [pid, id] : checkpoints) expected.push_back(restored_text(*j, pid, id));
  }
  EXPECT_THAT(expected[1], HasSubstr(R"([0 1 2 3 4 5 6 7 8 9 ] (0 a {"x":1} r0 5) (1 b {} r1 8))"));
  EXPECT_THAT(expected[2], HasSubstr("[0 1 2 90 9 10 11 ] (0 a {} moved 9) (1 b {} kept 4)"));
  {
    // As a version-2 journal was: checkpoints as lengths into the process's transcript.
    auto db = sqlite::Database::open(path, false);
    ASSERT_TRUE(db.ok());
    ASSERT_TRUE(db->exec("DROP TABLE checkpoint_results").ok());
    ASSERT_TRUE(db->exec("ALTER TABLE checkpoints DROP COLUMN transcript").ok());
    ASSERT_TRUE(db->exec("PRAGMA user_version=2").ok());
  }
  {
    // Read-only: read as it is, each checkpoint computed from its process's transcript.
    auto j = open_ok(path, {.read_only = true});
    ASSERT_TRUE(j);
    for (size_t i = 0; i < checkpoints.size(); ++i)
      EXPECT_EQ(restored_text(*j, checkpoints[i].first, checkpoints[i].second), expected[i]) << i;
    EXPECT_EQ(j->load(1)->checkpoints.size(), 2u);
  }
  {
    auto db = sqlite::Database::open(path, true);
    ASSERT_TRUE(db.ok());
    EXPECT_EQ(*db->query_int("PRAGMA user_version"), 2);
  }
  auto j = open_ok(path);
  ASSERT_TRUE(j);
  for (size_t i = 0; i < checkpoints.size(); ++i)
    EXPECT_EQ(restored_text(*j, checkpoints[i].first, checkpoints[i].second), expected[i]) << i;
  // Upgraded: the checkpoints hold their own data now, and a compaction keeps them.
  ASSERT_TRUE(j->replace_context(1, std::vector<int32_t>{0, 1, 2, 91, 10},
                                 JournalContext{.compactions = 1, .calls = 2, .start = 4,
                                                .generated = 6, .appended = 2, .turns = 2},
                                 0)
                  .ok());
  j.reset();
  j = open_ok(path);
  for (size_t i = 0; i < checkpoints.size(); ++i)
    EXPECT_EQ(restored_text(*j, checkpoints[i].first, checkpoints[i].second), expected[i]) << i;
  auto db = sqlite::Database::open(path, true);
  ASSERT_TRUE(db.ok());
  EXPECT_EQ(*db->query_int("PRAGMA user_version"), kJournalSchemaVersion);
  EXPECT_EQ(*db->query_int("SELECT count(*) FROM checkpoint_results"), 5);
}

TEST(ProcessJournal, ForgettingAProcessDeletesItsCheckpoints) {
  TempDir dir;
  const std::string path = dir.path() + "/journal.db";
  auto j = open_ok(path);
  ASSERT_TRUE(j);
  for (uint64_t pid : {1, 2}) {
    ASSERT_TRUE(j->begin_process(pid, "{}", 0, std::vector<int32_t>{1, 2, 3}).ok());
    ASSERT_TRUE(j->record_tool_result(pid, 0, "a", "{}", "r").ok());
    ASSERT_TRUE(j->checkpoint(pid, "x").ok());
    ASSERT_TRUE(j->checkpoint(pid, "y").ok());
    ASSERT_TRUE(j->exit(pid, "{}").ok());
  }
  const int64_t id = *j->find_checkpoint(1, "x");
  ASSERT_TRUE(j->forget(1).ok());
  EXPECT_EQ(code_of(j->restore(1, id)), Errc::not_found);
  EXPECT_EQ(code_of(j->checkpoint_pid(id)), Errc::not_found);
  EXPECT_EQ(j->stats()->checkpoints, 2);
  auto db = sqlite::Database::open(path, true);
  ASSERT_TRUE(db.ok());
  // Only process 2's: two checkpoints of one result each.
  EXPECT_EQ(*db->query_int("SELECT count(*) FROM checkpoint_results"), 2);
  EXPECT_EQ(*db->query_int("SELECT count(*) FROM checkpoint_results WHERE checkpoint NOT IN "
                           "(SELECT id FROM checkpoints WHERE pid = 2)"),
            0);
  EXPECT_TRUE(j->restore(2, *j->find_checkpoint(2, "y")).ok());
}

TEST(ProcessJournal, ADamagedCheckpointIsCorrupt) {
  TempDir dir;
  const std::string path = dir.path() + "/journal.db";
  auto j = open_ok(path);
  ASSERT_TRUE(j);
  ASSERT_TRUE(j->begin_process(1, "{}", 0, std::vector<int32_t>{1, 2, 3}).ok());
  ASSERT_TRUE(j->record_tool_result(1, 0, "a", "{}", "r0").ok());
  ASSERT_TRUE(j->append_tokens(1, std::vector<int32_t>{4}).ok());
  ASSERT_TRUE(j->record_tool_result(1, 1, "b", "{}", "r1").ok());
  const int64_t id = *j->checkpoint(1, "x");
  ASSERT_TRUE(j->restore(1, id).ok());
  auto db = sqlite::Database::open(path, false);
  ASSERT_TRUE(db.ok());
  const auto damaged = [&](const std::string& sql, const std::string& undo, const char* says) {
    ASSERT_TRUE(db->exec(sql).ok()) << sql;
    auto c = j->restore(1, id);
    ASSERT_FALSE(c.ok()) << sql;
    EXPECT_EQ(c.error().code(), Errc::corrupt) << sql;
    EXPECT_THAT(c.error().message(), HasSubstr(says)) << sql;
    ASSERT_TRUE(db->exec(undo).ok()) << undo;
    ASSERT_TRUE(j->restore(1, id).ok()) << undo;
  };
  const std::string whole = "UPDATE checkpoints SET transcript = '1 2 3 4'";
  damaged("UPDATE checkpoints SET transcript = '1 x 3 4'", whole, "malformed transcript");
  damaged("UPDATE checkpoints SET transcript = '1 2 3'", whole, "holds 3 tokens");
  damaged("UPDATE checkpoints SET context = '{'", "UPDATE checkpoints SET context = ''", "context");
  damaged("UPDATE checkpoint_results SET call_index = 5 WHERE call_index = 0",
          "UPDATE checkpoint_results SET call_index = 0 WHERE call_index = 5", "tool result 0");
  damaged("UPDATE checkpoint_results SET at_token = 9 WHERE call_index = 1",
          "UPDATE checkpoint_results SET at_token = 4 WHERE call_index = 1", "tool result 1");
  damaged("DELETE FROM checkpoint_results WHERE call_index = 1",
          str_cat("INSERT INTO checkpoint_results VALUES (", id, ", 1, 'b', '{}', 'r1', 4)"),
          "holds 1 tool results");
  // Damage to the process's own rows is refused at the checkpoint, not copied into it.
  ASSERT_TRUE(db->exec("UPDATE transcript SET tokens = '1 x' WHERE pid = 1 AND start = 0").ok());
  EXPECT_EQ(code_of(j->checkpoint(1, "y")), Errc::corrupt);
  EXPECT_EQ(j->load(1).error().code(), Errc::corrupt);
}

TEST(ProcessJournal, DamagedFilesAreReportedNotMisread) {
  TempDir dir;
  {
    const std::string path = dir.path() + "/garbage.db";
    std::ofstream(path) << std::string(4096, '\x7f');
    auto j = ProcessJournal::open(path);
    ASSERT_FALSE(j.ok());
    EXPECT_EQ(j.error().code(), Errc::corrupt);
  }
  {
    const std::string path = dir.path() + "/newer.db";
    {
      auto db = sqlite::Database::open(path, false);
      ASSERT_TRUE(
          db->exec("PRAGMA user_version=" + std::to_string(kJournalSchemaVersion + 1)).ok());
    }
    EXPECT_EQ(code_of(ProcessJournal::open(path)), Errc::unsupported);
  }
  {
    // A transcript row lost (or edited) behind the journal's back.
    const std::string path = dir.path() + "/journal.db";
    auto j = open_ok(path);
    ASSERT_TRUE(j);
    ASSERT_TRUE(j->begin_process(1, "{}", 0).ok());
    ASSERT_TRUE(j->append_tokens(1, std::vector<int32_t>{1, 2}).ok());
    ASSERT_TRUE(j->append_tokens(1, std::vector<int32_t>{3}).ok());
    auto db = sqlite::Database::open(path, false);
    ASSERT_TRUE(db->exec("DELETE FROM transcript WHERE start = 0").ok());
    auto p = j->load(1);
    ASSERT_FALSE(p.ok());
    EXPECT_EQ(p.error().code(), Errc::corrupt);
    EXPECT_THAT(p.error().message(), HasSubstr("transcript"));
    ASSERT_TRUE(db->exec("UPDATE transcript SET tokens = '1 x' WHERE pid = 1").ok());
    EXPECT_EQ(code_of(j->load(1)), Errc::corrupt);
  }
  EXPECT_EQ(code_of(ProcessJournal::open(dir.path() + "/none.db", {.read_only = true})),
            Errc::not_found);
}

}  // namespace
}  // namespace icam::memory
