#include "common/result.h"

namespace icam {

std::string_view errc_name(Errc code) {
  switch (code) {
    case Errc::invalid_argument:
      return "invalid_argument";
    case Errc::not_found:
      return "not_found";
    case Errc::io:
      return "io";
    case Errc::corrupt:
      return "corrupt";
    case Errc::unsupported:
      return "unsupported";
    case Errc::resource_exhausted:
      return "resource_exhausted";
    case Errc::unavailable:
      return "unavailable";
    case Errc::permission_denied:
      return "permission_denied";
    case Errc::cancelled:
      return "cancelled";
    case Errc::timed_out:
      return "timed_out";
    case Errc::internal:
      return "internal";
  }
  return "unknown";
}

}  // namespace icam
