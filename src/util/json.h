// A minimal JSON writer for the control socket's answers and fulcrum-decap status: objects,
// arrays, strings, numbers, booleans, null; commas and escaping handled. Not a parser (the daemon never reads JSON).
#pragma once

#include <cstdint>
#include <cstdio>
#include <string>
#include <string_view>
#include <vector>

namespace fulcrum {

class JsonWriter {
public:
    JsonWriter& begin_object() { return open('{'); }
    JsonWriter& end_object() { return close('}'); }
    JsonWriter& begin_array() { return open('['); }
    JsonWriter& end_array() { return close(']'); }
    JsonWriter& key(std::string_view k)
    {
        comma();
        string(k);
        out_ += ':';
        after_key_ = true;
        return *this;
    }
    JsonWriter& value(std::string_view v) { comma(); string(v); return *this; }
    JsonWriter& value(const char* v) { return value(std::string_view(v)); }
    JsonWriter& value(bool v) { comma(); out_ += v ? "true" : "false"; return *this; }
    JsonWriter& null() { comma(); out_ += "null"; return *this; }
    JsonWriter& value(double v)
    {
        comma();
        char buf[32];
        std::snprintf(buf, sizeof buf, "%.6g", v);
        out_ += buf;
        return *this;
    }
    template <typename Int>
        requires std::is_integral_v<Int>
    JsonWriter& value(Int v) { comma(); out_ += std::to_string(v); return *this; }
    template <typename T>
    JsonWriter& field(std::string_view k, const T& v) { key(k); return value(v); }
    const std::string& str() const { return out_; }

private:
    JsonWriter& open(char c) { comma(); out_ += c; first_.push_back(true); return *this; }
    JsonWriter& close(char c) { out_ += c; first_.pop_back(); return *this; }
    void comma()
    {
        if (after_key_) {
            after_key_ = false;
            return;
        }
        if (!first_.empty()) {
            if (!first_.back())
                out_ += ',';
            first_.back() = false;
        }
    }
    void string(std::string_view s)
    {
        out_ += '"';
        for (char c : s) {
            if (c == '"' || c == '\\') {
                out_ += '\\';
                out_ += c;
            } else if (static_cast<unsigned char>(c) < 0x20) {
                char buf[8];
                std::snprintf(buf, sizeof buf, "\\u%04x", c);
                out_ += buf;
            } else {
                out_ += c;
            }
        }
        out_ += '"';
    }
    std::string out_;
    std::vector<bool> first_;
    bool after_key_ = false;
};

}  // namespace fulcrum
