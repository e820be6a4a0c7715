// Status and Result<T>: the one error convention of fulcrum (no exceptions on the event path,
// STYLE.md). A function that can fail returns Status (nothing else to return) or Result<T> (a
// value, or the Status saying why there is none); callers check ok() and pass the message up,
// adding what they were doing. No out-parameters for errors.
#pragma once

#include <optional>
#include <string>
#include <utility>

namespace fulcrum {

class [[nodiscard]] Status {
public:
    Status() = default;
    static Status failure(std::string message) { return Status(std::move(message)); }
    bool ok() const { return message_.empty(); }
    const std::string& message() const { return message_; }

private:
    explicit Status(std::string message) : message_(std::move(message)) {}
    std::string message_;
};

template <typename T>
class [[nodiscard]] Result {
public:
    Result(T value) : value_(std::move(value)) {}  // NOLINT: implicit, so `return value;` works
    // A failure; `return status;` passes one up. An ok Status here is a bug in the caller, kept
    // as a failure that says so rather than a Result with neither value nor reason.
    Result(Status failure)  // NOLINT: implicit, so `return s;` works
        : status_(failure.ok() ? Status::failure("internal error: a Result made from an ok Status")
                               : std::move(failure)) {}

    bool ok() const { return value_.has_value(); }
    const Status& status() const { return status_; }
    const std::string& message() const { return status_.message(); }

    T& value() & { return *value_; }
    const T& value() const& { return *value_; }
    T&& value() && { return std::move(*value_); }
    T* operator->() { return &*value_; }
    const T* operator->() const { return &*value_; }
    T& operator*() & { return *value_; }
    const T& operator*() const& { return *value_; }

private:
    std::optional<T> value_;
    Status status_;
};

}  // namespace fulcrum
