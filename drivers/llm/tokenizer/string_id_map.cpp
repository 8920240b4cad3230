#include "drivers/llm/tokenizer/string_id_map.h"

#include <cstring>

namespace icam::llm {
namespace {

uint64_t mix(uint64_t x) {
  x ^= x >> 31;
  x *= 0x7FB5D329728EA185ULL;
  x ^= x >> 27;
  x *= 0x81DADEF4BC2DD44DULL;
  x ^= x >> 33;
  return x;
}

}  // namespace

uint64_t StringIdMap::hash_of(std::string_view key) {
  // Eight bytes at a time; the tail is read with overlapping loads rather than byte by byte
  // (byte stores followed by a word load stall the pipeline). The length seeds the state, so
  // keys that share their loaded words but differ in length still hash apart.
  const char* p = key.data();
  const size_t n = key.size();
  uint64_t h = 0x9E3779B97F4A7C15ULL ^ n;
  uint64_t word = 0;
  if (n >= 8) {
    size_t i = 0;
    for (; i + 8 < n; i += 8) {
      std::memcpy(&word, p + i, 8);
      h = mix(h ^ word);
    }
    std::memcpy(&word, p + n - 8, 8);
  } else if (n >= 4) {
    uint32_t first, last;
    std::memcpy(&first, p, 4);
    std::memcpy(&last, p + n - 4, 4);
    word = (uint64_t{first} << 32) | last;
  } else if (n > 0) {
    word = (uint64_t{static_cast<uint8_t>(p[0])} << 16) |
           (uint64_t{static_cast<uint8_t>(p[n / 2])} << 8) | static_cast<uint8_t>(p[n - 1]);
  }
  return mix(h ^ word);
}

void StringIdMap::reserve(size_t count) {
  entries_.reserve(count);
  size_t slots = 16;
  while (slots < count * 2) slots *= 2;
  if (slots > slots_.size()) rehash(slots);
}

void StringIdMap::rehash(size_t slot_count) {
  slots_.assign(slot_count, 0);
  const size_t mask = slot_count - 1;
  for (size_t i = 0; i < entries_.size(); ++i) {
    size_t slot = entries_[i].hash & mask;
    while (slots_[slot] != 0) slot = (slot + 1) & mask;
    slots_[slot] = make_slot(entries_[i].hash, i);
  }
}

bool StringIdMap::insert(std::string_view key, int32_t value) {
  if ((entries_.size() + 1) * 2 > slots_.size()) rehash(slots_.empty() ? 16 : slots_.size() * 2);
  const uint64_t hash = hash_of(key);
  const size_t mask = slots_.size() - 1;
  size_t slot = hash & mask;
  while (slots_[slot] != 0) {
    if (tag_of(slots_[slot]) == tag_of(make_slot(hash, 0))) {
      const Entry& entry = entries_[index_of(slots_[slot])];
      if (entry.hash == hash && key_of(entry) == key) return false;
    }
    slot = (slot + 1) & mask;
  }
  entries_.push_back(
      Entry{hash, static_cast<uint32_t>(arena_.size()), static_cast<uint32_t>(key.size()), value});
  arena_.append(key);
  slots_[slot] = make_slot(hash, entries_.size() - 1);
  return true;
}

int32_t StringIdMap::find(std::string_view key) const {
  if (slots_.empty()) return -1;
  const uint64_t hash = hash_of(key);
  const size_t mask = slots_.size() - 1;
  const uint32_t tag = tag_of(make_slot(hash, 0));
  size_t slot = hash & mask;
  while (slots_[slot] != 0) {
    if (tag_of(slots_[slot]) == tag) {
      const Entry& entry = entries_[index_of(slots_[slot])];
      if (entry.hash == hash && key_of(entry) == key) return entry.value;
    }
    slot = (slot + 1) & mask;
  }
  return -1;
}

}  // namespace icam::llm
