// How the attention loops take a group of query heads that share a key/value head: in blocks of
// up to four, each block a compile-time head count, so that a block's accumulators stay in
// registers. Shared by ops_avx2.cpp and ops_avx512.cpp, which are compiled with different
// instruction-set flags: the helper has internal linkage, so each file gets its own copy.
#pragma once

namespace icam::llm::ops {
namespace {

// f.template operator()<H>(h) for the blocks of up to four heads h .. h + H - 1.
template <typename F>
void for_head_blocks(int heads, const F& f) {
  for (int h = 0; h < heads; h += 4) {
    switch (heads - h < 4 ? heads - h : 4) {
      case 1:
        f.template operator()<1>(h);
        break;
      case 2:
        f.template operator()<2>(h);
        break;
      case 3:
        f.template operator()<3>(h);
        break;
      default:
        f.template operator()<4>(h);
    }
  }
}

}  // namespace
}  // namespace icam::llm::ops
