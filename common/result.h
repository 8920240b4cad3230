// Errors are values in icam: every fallible function returns Result<T> (or Status, which is
// Result<void>) and callers propagate failures with ICAM_TRY. Exceptions never cross a layer.
#pragma once

#include <cassert>
#include <sstream>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>
#include <variant>

namespace icam {

// Broad classes of failure; callers branch on these, people read the message.
enum class Errc {
  invalid_argument,    // the caller passed something malformed or out of range
  not_found,           // a named thing (file, key, tensor, process) does not exist
  io,                  // the operating system refused a read, write, map or open
  corrupt,             // data on disk or on the wire violates its format
  unsupported,         // well-formed, but a feature icam does not implement
  resource_exhausted,  // out of memory, disk, pages, budget
  unavailable,         // a device, a daemon or a registry that cannot be reached
  permission_denied,   // a capability or credential check failed
  cancelled,           // stopped on request
  timed_out,           // a deadline passed before the thing waited for happened
  internal,            // a bug in icam
};

std::string_view errc_name(Errc code);

// An error says what went wrong, where and why, in one line a person can act on.
class Error {
 public:
  Error(Errc code, std::string message) : code_(code), message_(std::move(message)) {}

  Errc code() const { return code_; }
  const std::string& message() const { return message_; }

  // Prefixes the message with the place it happened, e.g. a file name: "model.gguf: ...".
  Error&& with_context(std::string_view where) && {
    message_ = std::string(where) + ": " + message_;
    return std::move(*this);
  }

 private:
  Errc code_;
  std::string message_;
};

// Concatenates any streamable values into a string; used to build error messages.
template <typename... Args>
std::string str_cat(const Args&... args) {
  std::ostringstream out;
  (out << ... << args);
  return out.str();
}

template <typename... Args>
Error make_error(Errc code, const Args&... args) {
  return Error(code, str_cat(args...));
}

template <typename T>
class [[nodiscard]] Result {
 public:
  Result(T value) : state_(std::in_place_index<0>, std::move(value)) {}      // NOLINT: implicit
  Result(Error error) : state_(std::in_place_index<1>, std::move(error)) {}  // NOLINT: implicit

  bool ok() const { return state_.index() == 0; }
  explicit operator bool() const { return ok(); }

  T& value() & {
    assert(ok());
    return std::get<0>(state_);
  }
  const T& value() const& {
    assert(ok());
    return std::get<0>(state_);
  }
  T&& value() && {
    assert(ok());
    return std::get<0>(std::move(state_));
  }
  T* operator->() { return &value(); }
  const T* operator->() const { return &value(); }
  T& operator*() & { return value(); }
  const T& operator*() const& { return value(); }

  const Error& error() const& {
    assert(!ok());
    return std::get<1>(state_);
  }
  Error&& error() && {
    assert(!ok());
    return std::get<1>(std::move(state_));
  }

  T value_or(T fallback) const& { return ok() ? value() : std::move(fallback); }

 private:
  std::variant<T, Error> state_;
};

template <>
class [[nodiscard]] Result<void> {
 public:
  Result() = default;
  Result(Error error) : error_(std::move(error)), failed_(true) {}  // NOLINT: implicit

  bool ok() const { return !failed_; }
  explicit operator bool() const { return ok(); }
  void value() const { assert(ok()); }

  const Error& error() const& {
    assert(failed_);
    return error_;
  }
  Error&& error() && {
    assert(failed_);
    return std::move(error_);
  }

 private:
  Error error_{Errc::internal, ""};
  bool failed_ = false;
};

using Status = Result<void>;

inline Status ok_status() {
  return {};
}

namespace detail {
template <typename T>
T take_value(Result<T>&& result) {
  return std::move(result).value();
}
inline void take_value(Result<void>&&) {}
}  // namespace detail

}  // namespace icam

// Evaluates a Result-returning expression; on error returns the error from the enclosing
// function, otherwise yields the value (or nothing for Status). Uses a statement expression
// (GCC and Clang), as SerenityOS's TRY does.
#define ICAM_TRY(expr)                                                      \
  ({                                                                        \
    auto icam_try_result_ = (expr);                                         \
    if (!icam_try_result_.ok()) return std::move(icam_try_result_).error(); \
    ::icam::detail::take_value(std::move(icam_try_result_));                \
  })

// Like ICAM_TRY, but prefixes the error message with `where` on the way out.
#define ICAM_TRY_CTX(expr, where)                                                               \
  ({                                                                                            \
    auto icam_try_result_ = (expr);                                                             \
    if (!icam_try_result_.ok()) return std::move(icam_try_result_).error().with_context(where); \
    ::icam::detail::take_value(std::move(icam_try_result_));                                    \
  })
