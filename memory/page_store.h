// The page store (tier T1): KV pages in RocksDB, content-addressed. The key is the page hash (32
// bytes, see page_hash.h); the value is a 128-byte header followed by the page's keys and values
// of every layer, exactly as the KV pool lays them out:
//
//   offset size  field
//        0    4  magic "ICKP"
//        4    4  format version (1)
//        8   32  model identity (model_identity.h)
//       40   32  page hash (the key again: a value under another key is refused)
//       72    4  tokens in the page
//       76    4  layers
//       80    4  kv_dim (keys, and values, per token and layer)
//       84    4  element type: 1 = IEEE half
//       88    8  payload bytes (= tokens * layers * 2 * kv_dim * 2)
//       96   32  SHA-256 of bytes [0, 96) and of the payload
//      128    -  payload: [layer][K | V][token][kv_dim] halves
//
// Integers are little-endian. get() checks everything before it copies a byte out: the magic,
// version and sizes and the checksum (Errc::corrupt), the key echo (corrupt), then that the page
// was computed by the caller's model (Errc::invalid_argument) with the caller's page shape
// (Errc::invalid_argument); a page that fails is never returned, so the caller recomputes it.
//
// Compression is RocksDB's own (per data block, LZ4 by default): RocksDB keeps a block
// uncompressed when compressing it does not save at least 1/8, so it is used only when it pays.
// Writes go through RocksDB's write-ahead log; sync_writes makes each put durable before it
// returns. With max_bytes the store keeps only about that much, the oldest pages leaving first.
//
// Thread-safety: RocksDB is; a PageStore may be used from several threads.
#pragma once

#include <cstdint>
#include <memory>
#include <span>
#include <string>

#include "common/result.h"
#include "drivers/llm/engine/kv_pool.h"
#include "memory/model_identity.h"
#include "memory/page_hash.h"

namespace rocksdb {
class DB;
}

namespace icam::memory {

enum class PageCompression { none, lz4, zstd };

struct PageStoreOptions {
  PageCompression compression = PageCompression::lz4;
  bool sync_writes = false;
  bool create_if_missing = true;
  // When > 0, the store is a bounded cache: RocksDB's FIFO compaction deletes the oldest files
  // once the store holds more than this many bytes, so pages written long ago disappear first
  // (a page missing from the store is recomputed from its tokens; nothing depends on it).
  uint64_t max_bytes = 0;
};

// What a page holds, beyond its tokens' ids: must match between the pool and the store.
struct PageShape {
  uint32_t tokens = 0;
  uint32_t layers = 0;
  uint32_t kv_dim = 0;
  uint32_t element_type = 1;  // IEEE half, the only one the pool uses

  uint64_t payload_bytes() const { return uint64_t(tokens) * layers * 2 * kv_dim * 2; }
  bool operator==(const PageShape&) const = default;
  static PageShape of(const llm::KvPool& pool);
};

inline constexpr uint32_t kPageFormatVersion = 1;
inline constexpr size_t kPageHeaderBytes = 128;

class PageStore {
 public:
  // Opens (or creates) the RocksDB database in directory `path`.
  static Result<std::unique_ptr<PageStore>> open(const std::string& path,
                                                 const PageStoreOptions& options = {});
  ~PageStore();
  PageStore(const PageStore&) = delete;
  PageStore& operator=(const PageStore&) = delete;

  // Stores a page under `hash`; `payload` is shape.payload_bytes() long.
  Status put(const PageHash& hash, const ModelIdentity& model, const PageShape& shape,
             std::span<const uint8_t> payload);
  // Fetches and checks the page stored under `hash` into `out` (shape.payload_bytes() long).
  // Errc::not_found when absent; see the header comment for the other errors.
  Status get(const PageHash& hash, const ModelIdentity& model, const PageShape& shape,
             std::span<uint8_t> out) const;
  Result<bool> contains(const PageHash& hash) const;
  Status remove(const PageHash& hash);
  // Writes the memtable to SST files (so that later reads come from disk, not memory).
  Status flush();

  const std::string& path() const { return path_; }

 private:
  PageStore(rocksdb::DB* db, std::string path, bool sync);
  rocksdb::DB* db_;
  std::string path_;
  bool sync_;
};

std::string_view page_compression_name(PageCompression c);

}  // namespace icam::memory
