// Walking a YAML tree (yaml_tree.h) with positions: where a node is, its key path, the error list, and the
// key checks every mapping of the file gets (unknown, repeated and missing keys).
#pragma once

#include <yaml-cpp/mark.h>

#include <cstddef>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "config/config.h"
#include "config/yaml_tree.h"

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
    Node node;
    Spot spot;
};

// Bounds of the walk over the tree (README: Configuration reference > Limits). A YAML alias
// (*name) stands for the whole node its anchor (&name) marks, so a file of a few kilobytes can name
// one service thousands of times, each with thousands of backends; and every service and backend
// copies the health check it inherits. Unbounded, both grow into gigabytes. Without aliases the
// walk visits each node at most once, so it may visit the file's own nodes (counted by
// load_one_document, which sets the limit) and kMaxAliasVisits more: an anchored health check of
// 20 keys named by 5000 services fits. kMaxBuiltBytes counts every copy, even short-lived ones
// (a copy costs time too): a file at the data plane's limits with a health check on every backend
// (7 MB) passes at half of it.
constexpr std::size_t kMaxAliasVisits = 100'000;         // list items and mapping entries walked
constexpr std::size_t kMaxBuiltBytes = 512 * 1024 * 1024;  // scalars, services, backends and checks built

// Every error of one file, collected rather than thrown so the user sees them all at once. It
// also keeps the walk's bounds: past one, it holds a single error for it, at the place the walk
// had reached, and takes no more errors (the walk then stops short and nothing it does counts).
class Errors {
public:
    explicit Errors(std::string file) : file_(std::move(file)) {}
    void add(const Spot& at, std::string message);
    // The file has `nodes` YAML nodes: the walk may visit them and kMaxAliasVisits more.
    void limit_visits(std::size_t nodes) { file_nodes_ = nodes; }
    // Counts one list item or mapping entry at `at`; false past the limit.
    bool visit(const Spot& at);
    // Counts `bytes` built at `at` (a scalar copied, a service, a backend, a health check); false
    // past kMaxBuiltBytes.
    bool build(const Spot& at, std::size_t bytes);
    bool exhausted() const { return exhausted_; }
    // Reports `got` as not being `expected`: "expected EXPECTED, got DESCRIPTION".
    void expected(const Value& got, std::string_view expected);
    std::size_t count() const { return errors_.size(); }
    // The errors in file order (line, then column; ties keep the order they were found in).
    std::vector<Error> sorted() const;

private:
    void exhaust(const Spot& at, std::string message);

    std::string file_;
    std::vector<Error> errors_;
    std::size_t visits_ = 0, built_bytes_ = 0, file_nodes_ = 0;
    bool exhausted_ = false;
};

// How a node reads in a message: "\"text\"", "a list", "an empty list", "a mapping", "nothing"...
std::string describe(const Node& node);

// Converts a yaml-cpp mark (0-based) into a spot; a mark of a node that has none becomes 1:1.
Spot spot_of(const YAML::Mark& mark, std::string path);
// The spot of a node (its mark, as above).
Spot spot_of(const Node& node, std::string path);

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
    // The value of `key`, or null if the mapping has no such key; valid while the Mapping lives.
    const Value* get(std::string_view key) const;
    const Value* require(std::string_view key);

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
