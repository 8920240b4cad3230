#include "memory/page_store.h"

#include <rocksdb/convenience.h>
#include <rocksdb/db.h>
#include <rocksdb/options.h>
#include <rocksdb/slice.h>
#include <rocksdb/table.h>

#include <algorithm>
#include <cstring>
#include <string>
#include <vector>

namespace icam::memory {
namespace {

constexpr char kMagic[4] = {'I', 'C', 'K', 'P'};
constexpr size_t kChecksumOffset = 96;

void put_u32(uint8_t* p, uint32_t v) {
  for (int i = 0; i < 4; ++i) p[i] = static_cast<uint8_t>(v >> (8 * i));
}
void put_u64(uint8_t* p, uint64_t v) {
  for (int i = 0; i < 8; ++i) p[i] = static_cast<uint8_t>(v >> (8 * i));
}
uint32_t get_u32(const uint8_t* p) {
  uint32_t v = 0;
  for (int i = 3; i >= 0; --i) v = (v << 8) | p[i];
  return v;
}
uint64_t get_u64(const uint8_t* p) {
  uint64_t v = 0;
  for (int i = 7; i >= 0; --i) v = (v << 8) | p[i];
  return v;
}

Digest checksum(const uint8_t* header, std::span<const uint8_t> payload) {
  Sha256 h;
  h.bytes({header, kChecksumOffset});
  h.bytes(payload);
  return h.finish();
}

rocksdb::Slice key_slice(const PageHash& hash) {
  return {reinterpret_cast<const char*>(hash.data()), hash.size()};
}

Error rocks_error(const char* what, const rocksdb::Status& s) {
  return make_error(s.IsNotFound() ? Errc::not_found : Errc::io, "page store: ", what, ": ",
                    s.ToString());
}

}  // namespace

PageShape PageShape::of(const llm::KvPool& pool) {
  PageShape s;
  s.tokens = static_cast<uint32_t>(pool.page_tokens());
  s.layers = static_cast<uint32_t>(pool.n_layers());
  s.kv_dim = static_cast<uint32_t>(pool.kv_dim());
  return s;
}

std::string_view page_compression_name(PageCompression c) {
  switch (c) {
    case PageCompression::none:
      return "none";
    case PageCompression::lz4:
      return "lz4";
    case PageCompression::zstd:
      return "zstd";
  }
  return "?";
}

Result<std::unique_ptr<PageStore>> PageStore::open(const std::string& path,
                                                   const PageStoreOptions& options) {
  rocksdb::Options o;
  o.create_if_missing = options.create_if_missing;
  rocksdb::CompressionType type = rocksdb::kNoCompression;
  if (options.compression == PageCompression::lz4) type = rocksdb::kLZ4Compression;
  if (options.compression == PageCompression::zstd) type = rocksdb::kZSTD;
  if (type != rocksdb::kNoCompression) {
    const std::vector<rocksdb::CompressionType> supported = rocksdb::GetSupportedCompressions();
    if (std::find(supported.begin(), supported.end(), type) == supported.end())
      return make_error(Errc::unsupported, "page store: this RocksDB was built without ",
                        page_compression_name(options.compression), " compression");
  }
  o.compression = type;
  o.bottommost_compression = type;
  // Values are pages of hundreds of KiB: larger write buffers mean fewer, larger SST files.
  o.write_buffer_size = 64ull << 20;
  rocksdb::BlockBasedTableOptions table;
  table.block_size = 64 << 10;
  o.table_factory.reset(rocksdb::NewBlockBasedTableFactory(table));
  if (options.max_bytes > 0) {
    // A cache of pages: no compaction merges, the oldest SST files are dropped past the limit.
    o.compaction_style = rocksdb::kCompactionStyleFIFO;
    o.compaction_options_fifo.max_table_files_size = options.max_bytes;
    o.write_buffer_size = std::min<uint64_t>(o.write_buffer_size, std::max<uint64_t>(options.max_bytes / 8, 1ull << 20));
  }
  rocksdb::DB* db = nullptr;
  rocksdb::Status s = rocksdb::DB::Open(o, path, &db);
  if (!s.ok())
    return make_error(Errc::io, "page store: cannot open RocksDB at ", path, ": ", s.ToString());
  return std::unique_ptr<PageStore>(new PageStore(db, path, options.sync_writes));
}

PageStore::PageStore(rocksdb::DB* db, std::string path, bool sync)
    : db_(db), path_(std::move(path)), sync_(sync) {}

PageStore::~PageStore() {
  if (db_) {
    db_->Close();
    delete db_;
  }
}

Status PageStore::put(const PageHash& hash, const ModelIdentity& model, const PageShape& shape,
                      std::span<const uint8_t> payload) {
  if (payload.size() != shape.payload_bytes())
    return make_error(Errc::invalid_argument, "page store: page ", short_hex(hash), " has ",
                      payload.size(), " bytes, its shape says ", shape.payload_bytes());
  std::string value(kPageHeaderBytes + payload.size(), '\0');
  uint8_t* h = reinterpret_cast<uint8_t*>(value.data());
  std::memcpy(h, kMagic, 4);
  put_u32(h + 4, kPageFormatVersion);
  std::memcpy(h + 8, model.digest.data(), 32);
  std::memcpy(h + 40, hash.data(), 32);
  put_u32(h + 72, shape.tokens);
  put_u32(h + 76, shape.layers);
  put_u32(h + 80, shape.kv_dim);
  put_u32(h + 84, shape.element_type);
  put_u64(h + 88, payload.size());
  const Digest sum = checksum(h, payload);
  std::memcpy(h + kChecksumOffset, sum.data(), 32);
  std::memcpy(h + kPageHeaderBytes, payload.data(), payload.size());
  rocksdb::WriteOptions w;
  w.sync = sync_;
  rocksdb::Status s = db_->Put(w, key_slice(hash), value);
  if (!s.ok()) return rocks_error("put", s);
  return ok_status();
}

Status PageStore::get(const PageHash& hash, const ModelIdentity& model, const PageShape& shape,
                      std::span<uint8_t> out) const {
  if (out.size() != shape.payload_bytes())
    return make_error(Errc::invalid_argument, "page store: a buffer of ", out.size(),
                      " bytes for a page of ", shape.payload_bytes());
  rocksdb::PinnableSlice value;
  rocksdb::Status s =
      db_->Get(rocksdb::ReadOptions(), db_->DefaultColumnFamily(), key_slice(hash), &value);
  if (s.IsNotFound()) return make_error(Errc::not_found, "page store: no page ", short_hex(hash));
  if (!s.ok()) return rocks_error("get", s);

  const std::string where = "page store: page " + short_hex(hash);
  const uint8_t* h = reinterpret_cast<const uint8_t*>(value.data());
  if (value.size() < kPageHeaderBytes)
    return make_error(Errc::corrupt, where, ": value of ", value.size(),
                      " bytes is shorter than the header");
  if (std::memcmp(h, kMagic, 4) != 0) return make_error(Errc::corrupt, where, ": bad magic");
  if (get_u32(h + 4) != kPageFormatVersion)
    return make_error(Errc::corrupt, where, ": format version ", get_u32(h + 4), ", expected ",
                      kPageFormatVersion);
  const uint64_t payload_bytes = get_u64(h + 88);
  if (payload_bytes != value.size() - kPageHeaderBytes)
    return make_error(Errc::corrupt, where, ": header says ", payload_bytes,
                      " payload bytes, the value holds ", value.size() - kPageHeaderBytes);
  std::span<const uint8_t> payload(h + kPageHeaderBytes, payload_bytes);
  const Digest sum = checksum(h, payload);
  if (std::memcmp(sum.data(), h + kChecksumOffset, 32) != 0)
    return make_error(Errc::corrupt, where, ": checksum mismatch (the stored page is damaged)");
  if (std::memcmp(h + 40, hash.data(), 32) != 0)
    return make_error(Errc::corrupt, where, ": the value belongs to page ",
                      short_hex(*reinterpret_cast<const Digest*>(h + 40)));
  Digest stored_model;
  std::memcpy(stored_model.data(), h + 8, 32);
  if (stored_model != model.digest)
    return make_error(Errc::invalid_argument, where, " was computed by model ",
                      short_hex(stored_model), ", not by this model (", short_hex(model.digest),
                      ")");
  PageShape stored;
  stored.tokens = get_u32(h + 72);
  stored.layers = get_u32(h + 76);
  stored.kv_dim = get_u32(h + 80);
  stored.element_type = get_u32(h + 84);
  if (!(stored == shape) || stored.payload_bytes() != payload_bytes)
    return make_error(Errc::invalid_argument, where, " has ", stored.tokens, " tokens x ",
                      stored.layers, " layers x ", stored.kv_dim, " (type ", stored.element_type,
                      "), the pool's pages have ", shape.tokens, " x ", shape.layers, " x ",
                      shape.kv_dim, " (type ", shape.element_type, ")");
  std::memcpy(out.data(), payload.data(), payload.size());
  return ok_status();
}

Result<bool> PageStore::contains(const PageHash& hash) const {
  rocksdb::PinnableSlice value;
  rocksdb::Status s =
      db_->Get(rocksdb::ReadOptions(), db_->DefaultColumnFamily(), key_slice(hash), &value);
  if (s.IsNotFound()) return false;
  if (!s.ok()) return rocks_error("get", s);
  return true;
}

Status PageStore::remove(const PageHash& hash) {
  rocksdb::WriteOptions w;
  w.sync = sync_;
  rocksdb::Status s = db_->Delete(w, key_slice(hash));
  if (!s.ok()) return rocks_error("delete", s);
  return ok_status();
}

Status PageStore::flush() {
  rocksdb::Status s = db_->Flush(rocksdb::FlushOptions());
  if (!s.ok()) return rocks_error("flush", s);
  return ok_status();
}

}  // namespace icam::memory
