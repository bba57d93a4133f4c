// Status / StatusOr<T>: how every public longspec call reports failure.
//
// The public API never throws and never exits on a user's input. A failed call returns a
// non-OK Status whose message names what was wrong (the argument, the file, the tensor) and
// leaves the object it was called on as it was before the call.
#pragma once

#include <cassert>
#include <optional>
#include <string>
#include <utility>

namespace longspec {

enum class StatusCode : int {
  kOk = 0,
  kInvalidArgument = 1,    // a caller's argument is out of its domain
  kNotFound = 2,           // a file or directory that should be there is not
  kOutOfRange = 3,         // e.g. the context would exceed the model's or the cache's capacity
  kDataLoss = 4,           // a model file is truncated, corrupt or inconsistent (a tensor or key
                           // it must hold is missing, a shape, dtype or value is wrong)
  kUnimplemented = 5,      // a valid request this build cannot serve (e.g. CUDA when built without it)
  kFailedPrecondition = 6, // the object is not in a state where the call makes sense
  kResourceExhausted = 7,  // memory could not be allocated
  kIoError = 8,            // the OS refused a read/open/mmap
  kInternal = 9,           // a bug: an invariant of longspec itself broke
};

const char* StatusCodeName(StatusCode code);

class [[nodiscard]] Status {
 public:
  Status() = default;
  Status(StatusCode code, std::string message) : code_(code), message_(std::move(message)) {}

  static Status OK() { return Status(); }
  bool ok() const { return code_ == StatusCode::kOk; }
  StatusCode code() const { return code_; }
  const std::string& message() const { return message_; }
  // "INVALID_ARGUMENT: max_new_tokens must be >= 0, got -1"
  std::string ToString() const;

  // Prepends context to the message ("loading blk.3.attn_q.weight: ...").
  Status WithContext(const std::string& context) const;

 private:
  StatusCode code_ = StatusCode::kOk;
  std::string message_;
};

inline Status InvalidArgumentError(std::string m) { return {StatusCode::kInvalidArgument, std::move(m)}; }
inline Status NotFoundError(std::string m) { return {StatusCode::kNotFound, std::move(m)}; }
inline Status OutOfRangeError(std::string m) { return {StatusCode::kOutOfRange, std::move(m)}; }
inline Status DataLossError(std::string m) { return {StatusCode::kDataLoss, std::move(m)}; }
inline Status UnimplementedError(std::string m) { return {StatusCode::kUnimplemented, std::move(m)}; }
inline Status FailedPreconditionError(std::string m) { return {StatusCode::kFailedPrecondition, std::move(m)}; }
inline Status ResourceExhaustedError(std::string m) { return {StatusCode::kResourceExhausted, std::move(m)}; }
inline Status IoError(std::string m) { return {StatusCode::kIoError, std::move(m)}; }
inline Status InternalError(std::string m) { return {StatusCode::kInternal, std::move(m)}; }

// Either a value or a non-OK Status. Accessing value() of an error is a programming bug
// (asserted in debug builds).
template <typename T>
class [[nodiscard]] StatusOr {
 public:
  StatusOr(const Status& status) : status_(status) {  // NOLINT(implicit)
    if (status_.ok()) status_ = InternalError("StatusOr constructed from an OK Status without a value");
  }
  StatusOr(Status&& status) : status_(std::move(status)) {  // NOLINT(implicit)
    if (status_.ok()) status_ = InternalError("StatusOr constructed from an OK Status without a value");
  }
  StatusOr(const T& value) : value_(value) {}       // NOLINT(implicit)
  StatusOr(T&& value) : value_(std::move(value)) {}  // NOLINT(implicit)

  bool ok() const { return status_.ok(); }
  const Status& status() const { return status_; }

  T& value() & { assert(ok()); return *value_; }
  const T& value() const& { assert(ok()); return *value_; }
  T&& value() && { assert(ok()); return std::move(*value_); }
  T* operator->() { return &value(); }
  const T* operator->() const { return &value(); }
  T& operator*() & { return value(); }
  const T& operator*() const& { return value(); }

 private:
  Status status_;
  std::optional<T> value_;
};

}  // namespace longspec

#define LONGSPEC_CONCAT_INNER_(a, b) a##b
#define LONGSPEC_CONCAT_(a, b) LONGSPEC_CONCAT_INNER_(a, b)

#define LONGSPEC_RETURN_IF_ERROR(expr)                   \
  do {                                                   \
    ::longspec::Status longspec_status_ = (expr);        \
    if (!longspec_status_.ok()) return longspec_status_; \
  } while (0)

#define LONGSPEC_ASSIGN_OR_RETURN_IMPL_(tmp, lhs, expr) \
  auto tmp = (expr);                                    \
  if (!tmp.ok()) return tmp.status();                   \
  lhs = std::move(tmp).value()

// LONGSPEC_ASSIGN_OR_RETURN(auto x, MakeX());
#define LONGSPEC_ASSIGN_OR_RETURN(lhs, expr) \
  LONGSPEC_ASSIGN_OR_RETURN_IMPL_(LONGSPEC_CONCAT_(longspec_statusor_, __LINE__), lhs, expr)
