// A compact hash table from byte strings to int32 values, built once and then only read.
//
// Tokenizers look up every candidate merge of adjacent pieces, so lookups dominate encoding time.
// std::unordered_map<std::string, int> allocates per node and, with string_view keys, needs the
// keys kept elsewhere; this table owns its keys in one arena and probes a flat slot array.
// Thread-safety: const methods may be called from any number of threads at once.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace icam::llm {

class StringIdMap {
 public:
  // Adds `key` with `value`. Returns false, leaving the table unchanged, when the key is present.
  bool insert(std::string_view key, int32_t value);

  // The value stored for `key`, or -1 when absent.
  int32_t find(std::string_view key) const;

  size_t size() const { return entries_.size(); }
  void reserve(size_t count);

 private:
  struct Entry {
    uint64_t hash;
    uint32_t offset;  // into arena_
    uint32_t length;
    int32_t value;
  };

  static uint64_t hash_of(std::string_view key);
  std::string_view key_of(const Entry& entry) const {
    return std::string_view(arena_).substr(entry.offset, entry.length);
  }
  void rehash(size_t slot_count);

  // A slot holds the high half of the key's hash (so most mismatches are rejected without
  // touching the entry) and entry index + 1; 0 marks an empty slot.
  static uint64_t make_slot(uint64_t hash, size_t index) {
    return (hash & 0xFFFFFFFF00000000ULL) | (static_cast<uint64_t>(index) + 1);
  }
  static uint32_t tag_of(uint64_t slot) { return static_cast<uint32_t>(slot >> 32); }
  static size_t index_of(uint64_t slot) { return static_cast<size_t>(slot & 0xFFFFFFFF) - 1; }

  std::string arena_;
  std::vector<Entry> entries_;
  std::vector<uint64_t> slots_;  // see make_slot(); the size is a power of two
};

}  // namespace icam::llm
