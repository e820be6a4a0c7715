// Status: the result of an operation that can fail, carrying the message for the operator.
// No exceptions on the event path (STYLE.md); callers check ok() and pass the message up.
#pragma once

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

}  // namespace fulcrum
