// Walking a yaml-cpp tree with positions: where a node is, its key path, the error list, and the
// key checks every mapping of the file gets (unknown, repeated and missing keys).
#pragma once

#include <yaml-cpp/yaml.h>

#include <cstddef>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "config/config.h"

namespace fulcrum::config::detail {

// A place in the file (1-based) and the key path of what is there.
struct Spot {
    int line = 0;
    int column = 0;
    std::string path;
};

// A node of the tree with its place. A key written with no value ("port:") is a null node that
// yaml-cpp places at the next token, so its spot is the key's instead.
struct Value {
    YAML::Node node;
    Spot spot;
};

// Every error of one file, collected rather than thrown so the user sees them all at once.
class Errors {
public:
    explicit Errors(std::string file) : file_(std::move(file)) {}
    void add(const Spot& at, std::string message);
    // Reports `got` as not being `expected`: "expected EXPECTED, got DESCRIPTION".
    void expected(const Value& got, std::string_view expected);
    std::size_t count() const { return errors_.size(); }
    // The errors in file order (line, then column; ties keep the order they were found in).
    std::vector<Error> sorted() const;

private:
    std::string file_;
    std::vector<Error> errors_;
};

// How a node reads in a message: "\"text\"", "a list", "an empty list", "a mapping", "nothing"...
std::string describe(const YAML::Node& node);

// Converts a yaml-cpp mark (0-based) into a spot; a mark of a node that has none becomes 1:1.
Spot spot_of(const YAML::Mark& mark, std::string path);

// "a.b" / "a[3]": the key paths of messages.
std::string child_path(const std::string& path, std::string_view key);
std::string index_path(const std::string& path, std::size_t index);

// The known key closest to `key` by edit distance, if it is close enough to be a likely typo.
std::optional<std::string_view> closest_key(std::string_view key, const std::vector<std::string_view>& known);

// The items of a list, or nothing after reporting that `value` is not a list of `what`.
std::optional<std::vector<Value>> list_items(Errors& errors, const Value& value, std::string_view what);

// One YAML mapping whose keys have been checked against the keys it may have. Unknown keys (with
// the nearest known key suggested) and keys given twice are reported on construction; a required
// key is reported missing, at the mapping, when asked for.
class Mapping {
public:
    Mapping(Errors& errors, const Value& value, std::vector<std::string_view> known);
    bool is_mapping() const { return is_mapping_; }
    const Spot& spot() const { return spot_; }
    std::optional<Value> get(std::string_view key) const;
    std::optional<Value> require(std::string_view key);

private:
    Errors& errors_;
    Spot spot_;
    bool is_mapping_ = false;
    struct Field {
        std::string key;
        int key_line;
        Value value;
    };
    std::vector<Field> fields_;  // the first occurrence of each known key
};

}  // namespace fulcrum::config::detail
