#include "drivers/llm/engine/cpu_backend.h"

#include <sys/mman.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstring>

#include "drivers/llm/engine/ops.h"
#include "drivers/llm/quant/quant.h"

namespace icam::llm {

Result<std::unique_ptr<CpuBackend>> CpuBackend::create(const ModelConfig& config,
                                                       const ModelWeights& weights,
                                                       const KvPoolOptions& kv, int threads) {
  KvPool pool = ICAM_TRY(KvPool::create(config, kv));
  return std::unique_ptr<CpuBackend>(new CpuBackend(config, weights, std::move(pool), threads));
}

CpuBackend::CpuBackend(const ModelConfig& config, const ModelWeights& weights, KvPool pool,
                       int threads)
    : config_(config), weights_(weights), pool_(std::move(pool)), threads_(threads) {
  pack_weights();
}

namespace {

// Whether [p, p + bytes) lies in one mapping of a file (not anonymous memory), from
// /proc/self/maps. Only then may its pages be dropped with MADV_DONTNEED: they come back from
// the file when read again, where anonymous pages would come back as zeros.
bool in_file_mapping(const void* p, size_t bytes) {
  std::FILE* maps = std::fopen("/proc/self/maps", "r");
  if (maps == nullptr) return false;
  const auto begin = reinterpret_cast<uintptr_t>(p);
  bool file = false;
  char line[4096];
  while (std::fgets(line, sizeof line, maps) != nullptr) {
    unsigned long lo = 0, hi = 0, inode = 0;
    if (std::sscanf(line, "%lx-%lx %*s %*s %*s %lu", &lo, &hi, &inode) != 3) continue;
    if (begin >= lo && begin + bytes <= hi) {
      file = inode != 0;
      break;
    }
  }
  std::fclose(maps);
  return file;
}

// The packed copy replaces the GGUF rows: drop their pages from this process's resident set
// (they stay in the page cache and come back if read, as the token embedding's rows are), so
// that the weights are resident once, not twice.
void release_original(const PackedWeight& w) {
  if (w.packed_rows() == 0) return;
  const size_t bytes = static_cast<size_t>(w.packed_rows()) * ggml_row_bytes(w.type(), w.cols());
  const size_t page = static_cast<size_t>(sysconf(_SC_PAGESIZE));
  const auto start = reinterpret_cast<uintptr_t>(w.original());
  const uintptr_t first = (start + page - 1) / page * page;
  const uintptr_t last = (start + bytes) / page * page;
  if (last <= first || !in_file_mapping(w.original(), bytes)) return;
  madvise(reinterpret_cast<void*>(first), last - first, MADV_DONTNEED);
}

void add_bias(float* y, const float* bias, int64_t rows, int64_t dim) {
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t i = 0; i < dim; ++i) y[r * dim + i] += bias[i];
}

template <typename Fn>
void for_rows(ThreadPool& pool, int64_t n, Fn&& fn) {
  pool.parallel_for(static_cast<size_t>(n), 4, [&](size_t b, size_t e) {
    for (size_t r = b; r < e; ++r) fn(static_cast<int64_t>(r));
  });
}

}  // namespace

void CpuBackend::pack_weights() {
  // All matrices in one allocation (huge pages; see PackedWeight::pack_together), in the order
  // a forward pass reads them.
  std::vector<PackedWeight::Source> sources;
  const auto add = [&](const Weight& w) { sources.push_back({w.type, w.data, w.rows, w.cols}); };
  for (const LayerWeights& w : weights_.layers) {
    for (const Weight* m : {&w.wq, &w.wk, &w.wv, &w.wo, &w.w_gate, &w.w_up, &w.w_down}) add(*m);
  }
  add(weights_.output);
  std::vector<PackedWeight> packed = PackedWeight::pack_together(sources, release_original);
  auto next = packed.begin();
  for (size_t l = 0; l < weights_.layers.size(); ++l) {
    PackedLayer& p = packed_.emplace_back();
    for (PackedWeight* m : {&p.wq, &p.wk, &p.wv, &p.wo, &p.w_gate, &p.w_up, &p.w_down})
      *m = std::move(*next++);
  }
  output_ = std::move(*next);
}

namespace {

// Keys per chunk of a row's attention. A row that sees more keys is attended chunk by chunk, each
// chunk's softmax-weighted sum kept unnormalized with its largest score and its sum of
// exponentials, and the chunks merged in order afterwards (merge_chunks). The chunks of one row
// can then run on different threads: decoding one long sequence reads its keys and values once,
// split across the threads, where splitting the query heads had every thread read all of them.
// Fixed, so a row's result depends only on its own keys, never on the batch or the threads; a row
// with up to kKeyChunk keys (every row of Gemma 3's sliding-window layers) takes the single pass.
constexpr int32_t kKeyChunk = 512;

// dst = the merged attention output of one head over `chunks` chunks, each given by its
// unnormalized weighted sum (`out`, out_stride floats from one chunk to the next), its largest
// score and its sum of exponentials (`scalar_stride` apart), merged in chunk order.
void merge_chunks(int chunks, const float* out, size_t out_stride, const float* maxima,
                  const double* sums, size_t scalar_stride, int n, float* dst) {
  float top = -INFINITY;
  for (int i = 0; i < chunks; ++i) top = std::max(top, maxima[i * scalar_stride]);
  double total = 0;
  for (int i = 0; i < chunks; ++i)
    total +=
        std::exp(static_cast<double>(maxima[i * scalar_stride]) - top) * sums[i * scalar_stride];
  std::fill(dst, dst + n, 0.0f);
  for (int i = 0; i < chunks; ++i) {
    const auto w =
        static_cast<float>(std::exp(static_cast<double>(maxima[i * scalar_stride]) - top) / total);
    const float* o = out + i * out_stride;
    for (int d = 0; d < n; ++d) dst[d] += w * o[d];
  }
}

}  // namespace

void CpuBackend::attend(int layer, const SequenceStep& step, const KeyChunk& chunk, int kv_head,
                        int head0, int heads, float* out, float* maxima, double* sums) {
  const ModelConfig& c = config_;
  const int hd = c.head_dim;
  const int P = pool_.page_tokens();
  thread_local std::vector<float> scores;
  thread_local std::vector<const uint16_t*> rows;
  const int32_t count = chunk.count;
  if (static_cast<int64_t>(scores.size()) < static_cast<int64_t>(count) * heads)
    scores.resize(static_cast<size_t>(count) * heads);
  if (static_cast<int32_t>(rows.size()) < count) rows.resize(count);
  // rows[j]: the chunk's j-th key (or value) row of kv_head, in its page.
  const auto point_rows = [&](bool values) {
    for (int32_t j = 0; j < count; ++j) {
      const int32_t p = chunk.first + j;
      const int32_t page = step.pages[p / P];
      rows[j] = (values ? pool_.values(page, layer) : pool_.keys(page, layer)) +
                static_cast<int64_t>(p % P) * c.kv_dim() + kv_head * hd;
    }
  };
  const float* q = q_.data() + chunk.row * c.q_dim() + static_cast<int64_t>(head0) * hd;
  point_rows(false);
  ops::dot_f16_rows(q, heads, hd, rows.data(), count, hd, scores.data(), count);
  for (int h = 0; h < heads; ++h) {
    float* s = scores.data() + static_cast<int64_t>(h) * count;
    float max_score = -INFINITY;
    for (int32_t j = 0; j < count; ++j) max_score = std::max(max_score, s[j]);
    double sum = 0;
    for (int32_t j = 0; j < count; ++j) {
      s[j] = std::exp(s[j] - max_score);
      sum += s[j];
    }
    if (chunk.of == 1) {
      // The row's only chunk: normalized here, so the weighted sum is the output.
      const float inv = static_cast<float>(1.0 / sum);
      for (int32_t j = 0; j < count; ++j) s[j] *= inv;
    } else {
      maxima[h] = max_score;
      sums[h] = sum;
    }
  }
  point_rows(true);
  ops::weighted_sum_f16(scores.data(), heads, count, rows.data(), count, hd, out, hd);
}

void CpuBackend::attention(int layer, std::span<const SequenceStep> batch, int64_t n_rows) {
  const ModelConfig& c = config_;
  const int hd = c.head_dim;
  const int group = c.n_heads / c.n_kv_heads;
  const bool local = c.layer_is_local[layer];
  // Each row's visible keys (sliding-window layers see the last `sliding_window` positions
  // only), in chunks.
  chunks_.clear();
  row_chunks_.assign(static_cast<size_t>(n_rows) + 1, 0);
  int64_t keys = 0;
  for (int64_t row = 0; row < n_rows; ++row) {
    const int32_t pos = rows_[row].pos;
    const int32_t first = local ? std::max(0, pos - c.sliding_window + 1) : 0;
    const int32_t count = pos - first + 1;
    keys += count;
    const int32_t of = (count + kKeyChunk - 1) / kKeyChunk;
    for (int32_t i = 0; i < of; ++i)
      chunks_.push_back(
          {row, first + i * kKeyChunk, std::min(kKeyChunk, count - i * kKeyChunk), of, -1});
    row_chunks_[row + 1] = static_cast<int64_t>(chunks_.size());
  }
  // Short contexts (a few decode steps into a sequence) are less work than handing them to the
  // pool's threads: run them on this thread (grain > tasks runs parallel_for inline).
  constexpr int64_t kInlineKeyHeads = 512;
  const bool inline_all = keys * c.n_heads < kInlineKeyHeads;
  const auto grain_for = [&](int64_t tasks) {
    return inline_all ? 2 * static_cast<size_t>(tasks) + 2 : size_t{1};
  };
  const int threads = threads_.size();

  // Rows enough for the threads (prefill, batches): a task is a row's key/value head with all the
  // query heads that share it (its keys and values read and converted once for all of them), its
  // chunks one after the other into thread-local partials, then merged.
  if (n_rows * c.n_kv_heads >= 2 * threads) {
    const int64_t tasks = n_rows * c.n_kv_heads;
    threads_.parallel_for(static_cast<size_t>(tasks), grain_for(tasks), [&](size_t b, size_t e) {
      thread_local std::vector<float> outs, maxima;
      thread_local std::vector<double> sums;
      for (size_t task = b; task < e; ++task) {
        const int64_t row = static_cast<int64_t>(task) / c.n_kv_heads;
        const int kv_head = static_cast<int>(static_cast<int64_t>(task) % c.n_kv_heads);
        const int head0 = kv_head * group;
        const SequenceStep& step = batch[rows_[row].seq];
        float* dst = attn_.data() + row * c.q_dim() + static_cast<int64_t>(head0) * hd;
        const int64_t c0 = row_chunks_[row], of = row_chunks_[row + 1] - c0;
        if (of == 1) {
          attend(layer, step, chunks_[c0], kv_head, head0, group, dst, nullptr, nullptr);
          continue;
        }
        outs.resize(static_cast<size_t>(of * group * hd));
        maxima.resize(static_cast<size_t>(of * group));
        sums.resize(maxima.size());
        for (int64_t i = 0; i < of; ++i)
          attend(layer, step, chunks_[c0 + i], kv_head, head0, group, outs.data() + i * group * hd,
                 maxima.data() + i * group, sums.data() + i * group);
        for (int h = 0; h < group; ++h)
          merge_chunks(static_cast<int>(of), outs.data() + h * hd, static_cast<size_t>(group) * hd,
                       maxima.data() + h, sums.data() + h, group, hd, dst + h * hd);
      }
    });
    return;
  }

  // Few rows (decoding one sequence or two): a task is one chunk of a row's key/value head, with
  // `task_heads` of the query heads that share it; the group is split (into `splits` tasks) only
  // as far as it takes to give every thread a task. The partials of rows with several chunks go
  // to slots of their own and are merged once every chunk is done.
  int64_t slots = 0;
  for (KeyChunk& chunk : chunks_)
    if (chunk.of > 1) chunk.slot = slots++;
  const int64_t units = static_cast<int64_t>(chunks_.size()) * c.n_kv_heads;
  int splits = 1;
  while (splits < group && units * splits < threads) {
    ++splits;
    while (group % splits != 0) ++splits;
  }
  const int task_heads = group / splits;
  const int64_t tasks = units * splits;
  partial_out_.resize(static_cast<size_t>(slots * c.n_heads * hd));
  partial_max_.resize(static_cast<size_t>(slots * c.n_heads));
  partial_sum_.resize(partial_max_.size());
  threads_.parallel_for(static_cast<size_t>(tasks), grain_for(tasks), [&](size_t b, size_t e) {
    for (size_t task = b; task < e; ++task) {
      const KeyChunk& chunk = chunks_[task / (c.n_kv_heads * splits)];
      const int part = static_cast<int>(static_cast<int64_t>(task) % (c.n_kv_heads * splits));
      const int kv_head = part / splits;
      const int head0 = kv_head * group + (part % splits) * task_heads;
      const SequenceStep& step = batch[rows_[chunk.row].seq];
      if (chunk.slot < 0) {
        float* dst = attn_.data() + chunk.row * c.q_dim() + static_cast<int64_t>(head0) * hd;
        attend(layer, step, chunk, kv_head, head0, task_heads, dst, nullptr, nullptr);
        continue;
      }
      const int64_t at = chunk.slot * c.n_heads + head0;
      attend(layer, step, chunk, kv_head, head0, task_heads, partial_out_.data() + at * hd,
             partial_max_.data() + at, partial_sum_.data() + at);
    }
  });
  for (int64_t row = 0; row < n_rows; ++row) {
    const KeyChunk& first = chunks_[row_chunks_[row]];
    if (first.slot < 0) continue;
    for (int h = 0; h < c.n_heads; ++h) {
      const int64_t at = first.slot * c.n_heads + h;
      merge_chunks(first.of, partial_out_.data() + at * hd, static_cast<size_t>(c.n_heads) * hd,
                   partial_max_.data() + at, partial_sum_.data() + at, c.n_heads, hd,
                   attn_.data() + row * c.q_dim() + static_cast<int64_t>(h) * hd);
    }
  }
}

Status CpuBackend::forward(std::span<const SequenceStep> batch, std::vector<float>& logits) {
  ICAM_TRY(validate_batch(batch, config_, pool_));
  const auto t0 = std::chrono::steady_clock::now();
  const ModelConfig& c = config_;
  const int64_t d = c.d_model;

  // Flatten the batch into token rows and note which rows produce logits.
  rows_.clear();
  logit_rows_.clear();
  for (size_t s = 0; s < batch.size(); ++s) {
    const auto& step = batch[s];
    for (size_t t = 0; t < step.tokens.size(); ++t) {
      rows_.push_back({static_cast<int>(s), step.start_pos + static_cast<int32_t>(t)});
      const bool last = t + 1 == step.tokens.size();
      if (step.logits == LogitsWanted::all || (step.logits == LogitsWanted::last && last))
        logit_rows_.push_back(static_cast<int64_t>(rows_.size()) - 1);
    }
  }
  const int64_t n = static_cast<int64_t>(rows_.size());
  auto grow = [](std::vector<float>& v, int64_t size) {
    if (static_cast<int64_t>(v.size()) < size) v.resize(size);
  };
  grow(x_, n * d);
  grow(h_, n * d);
  grow(q_, n * c.q_dim());
  grow(k_, n * c.kv_dim());
  grow(v_, n * c.kv_dim());
  grow(attn_, n * c.q_dim());
  grow(o_, n * d);
  grow(gate_, n * c.d_ffn);
  grow(up_, n * c.d_ffn);

  // RoPE angles of each row's position, once for all layers. Frequency factors belong to the
  // global RoPE (Llama 3.1 has no local layers).
  const int half = c.head_dim / 2;
  const bool any_local =
      std::find(c.layer_is_local.begin(), c.layer_is_local.end(), true) != c.layer_is_local.end();
  grow(rope_global_, n * 2 * half);
  if (any_local) grow(rope_local_, n * 2 * half);
  for (int64_t r = 0; r < n; ++r) {
    float* g = rope_global_.data() + r * 2 * half;
    ops::rope_angles(c.head_dim, rows_[r].pos, c.rope_base, c.rope_scale,
                     weights_.rope_freqs ? weights_.rope_freqs.f32() : nullptr, g, g + half);
    if (!any_local) continue;
    float* l = rope_local_.data() + r * 2 * half;
    ops::rope_angles(c.head_dim, rows_[r].pos, c.rope_base_local, 1.0f, nullptr, l, l + half);
  }

  // Token embeddings.
  {
    const Weight& emb = weights_.token_embedding;
    const uint64_t row_bytes = ggml_row_bytes(emb.type, d);
    int64_t r = 0;
    for (const auto& step : batch) {
      for (int32_t token : step.tokens) {
        const auto* src = static_cast<const uint8_t*>(emb.data) + row_bytes * token;
        float* dst = x_.data() + r * d;
        dequantize_row(emb.type, src, dst, d);
        if (c.embedding_scale != 1.0f)
          for (int64_t i = 0; i < d; ++i) dst[i] *= c.embedding_scale;
        ++r;
      }
    }
  }

  const int P = pool_.page_tokens();
  for (int l = 0; l < c.n_layers; ++l) {
    const LayerWeights& w = weights_.layers[l];
    const PackedLayer& pw = packed_[l];
    const bool local = c.layer_is_local[l];
    const std::vector<float>& rope_table = local ? rope_local_ : rope_global_;

    for_rows(threads_, n, [&](int64_t r) {
      ops::rms_norm(x_.data() + r * d, w.attn_norm.f32(), h_.data() + r * d, d, c.rms_eps);
    });
    // Q, K and V read the same normalized rows: one region, activations quantized once.
    const MatmulJob qkv[] = {{&pw.wq, q_.data(), c.q_dim()},
                             {&pw.wk, k_.data(), c.kv_dim()},
                             {&pw.wv, v_.data(), c.kv_dim()}};
    matmul_group(threads_, qkv, h_.data(), n);
    if (c.attention_bias) {
      add_bias(q_.data(), w.bq.f32(), n, c.q_dim());
      add_bias(k_.data(), w.bk.f32(), n, c.kv_dim());
      add_bias(v_.data(), w.bv.f32(), n, c.kv_dim());
    }

    // Per-head norms, rotary positions, then keys and values into the pool.
    for_rows(threads_, n, [&](int64_t r) {
      float* q = q_.data() + r * c.q_dim();
      float* k = k_.data() + r * c.kv_dim();
      if (c.qk_norm) {
        for (int h = 0; h < c.n_heads; ++h)
          ops::rms_norm(q + h * c.head_dim, w.q_norm.f32(), q + h * c.head_dim, c.head_dim,
                        c.rms_eps);
        for (int h = 0; h < c.n_kv_heads; ++h)
          ops::rms_norm(k + h * c.head_dim, w.k_norm.f32(), k + h * c.head_dim, c.head_dim,
                        c.rms_eps);
      }
      const int32_t pos = rows_[r].pos;
      const float* cos_v = rope_table.data() + r * 2 * half;
      ops::rope_apply(q, c.n_heads, c.head_dim, cos_v, cos_v + half, c.rope_style);
      ops::rope_apply(k, c.n_kv_heads, c.head_dim, cos_v, cos_v + half, c.rope_style);
      for (int i = 0; i < c.q_dim(); ++i) q[i] *= c.attention_scale;
      const SequenceStep& step = batch[rows_[r].seq];
      const int32_t page = step.pages[pos / P];
      const int64_t slot = static_cast<int64_t>(pos % P) * c.kv_dim();
      ops::f32_to_f16(k, pool_.keys(page, l) + slot, c.kv_dim());
      ops::f32_to_f16(v_.data() + r * c.kv_dim(), pool_.values(page, l) + slot, c.kv_dim());
    });

    attention(l, batch, n);
    matmul(threads_, pw.wo, attn_.data(), n, o_.data(), d);
    for_rows(threads_, n, [&](int64_t r) {
      float* o = o_.data() + r * d;
      if (c.post_norms) ops::rms_norm(o, w.post_attn_norm.f32(), o, d, c.rms_eps);
      float* x = x_.data() + r * d;
      for (int64_t i = 0; i < d; ++i) x[i] += o[i];
      ops::rms_norm(x, w.ffn_norm.f32(), h_.data() + r * d, d, c.rms_eps);
    });

    // Gate and up in one region; each task applies the activation to the rows it finished, so
    // the (costly: tanh, exp) activation is spread over the threads without another hand-off.
    const MatmulJob gate_up[] = {{&pw.w_gate, gate_.data(), c.d_ffn},
                                 {&pw.w_up, up_.data(), c.d_ffn}};
    const RowsDone activate = [&](int64_t begin, int64_t end) {
      for (int64_t r = 0; r < n; ++r) {
        const int64_t off = r * c.d_ffn + begin;
        ops::gated_activation(gate_.data() + off, up_.data() + off, gate_.data() + off,
                              static_cast<int>(end - begin), c.activation);
      }
    };
    matmul_group(threads_, gate_up, h_.data(), n, &activate);
    matmul(threads_, pw.w_down, gate_.data(), n, o_.data(), d);
    for_rows(threads_, n, [&](int64_t r) {
      float* o = o_.data() + r * d;
      if (c.post_norms) ops::rms_norm(o, w.post_ffn_norm.f32(), o, d, c.rms_eps);
      float* x = x_.data() + r * d;
      for (int64_t i = 0; i < d; ++i) x[i] += o[i];
    });
  }

  // Final norm and the output projection, only for rows that want logits.
  const int64_t m = static_cast<int64_t>(logit_rows_.size());
  logits.resize(static_cast<size_t>(m) * c.n_vocab);
  if (m > 0) {
    grow(out_rows_, m * d);
    for (int64_t i = 0; i < m; ++i)
      ops::rms_norm(x_.data() + logit_rows_[i] * d, weights_.output_norm.f32(),
                    out_rows_.data() + i * d, d, c.rms_eps);
    matmul(threads_, output_, out_rows_.data(), m, logits.data(), c.n_vocab);
  }

  stats_.steps += 1;
  stats_.tokens += static_cast<uint64_t>(n);
  stats_.seconds += std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  return ok_status();
}

}  // namespace icam::llm
