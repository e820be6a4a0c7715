// Positions, key paths, errors and mapping key checks for the config parser (see yaml_walk.h).
#include "config/yaml_walk.h"

#include <algorithm>

namespace fulcrum::config::detail {

void Errors::add(const Spot& at, std::string message)
{
    // Errors are built too: an alias repeats the errors of what it names.
    if (!build(at, sizeof(Error) + at.path.size() + message.size())) return;
    errors_.push_back(Error{file_, at.line, at.column, at.path, std::move(message)});
}

void Errors::exhaust(const Spot& at, std::string message)
{
    if (exhausted_) return;
    errors_.push_back(Error{file_, at.line, at.column, at.path, std::move(message)});
    exhausted_ = true;
}

bool Errors::visit(const Spot& at)
{
    if (exhausted_) return false;
    if (++visits_ <= file_nodes_ + kMaxAliasVisits) return true;
    exhaust(at, "expected at most " + std::to_string(file_nodes_ + kMaxAliasVisits) +
                    " list items and keys walked (the file's " + std::to_string(file_nodes_) + " YAML nodes and " +
                    std::to_string(kMaxAliasVisits) + " more through aliases: each *alias counts all that its "
                    "&anchor holds, every time), got more by here");
    return false;
}

bool Errors::build(const Spot& at, std::size_t bytes)
{
    if (exhausted_) return false;
    built_bytes_ += bytes;
    if (built_bytes_ <= kMaxBuiltBytes) return true;
    exhaust(at, "expected a configuration of at most " + std::to_string(kMaxBuiltBytes / (1024 * 1024)) +
                    " MiB once YAML aliases and inherited health checks are expanded, got more by here");
    return false;
}

void Errors::expected(const Value& got, std::string_view expected)
{
    add(got.spot, "expected " + std::string(expected) + ", got " + describe(got.node));
}

std::vector<Error> Errors::sorted() const
{
    std::vector<Error> out = errors_;
    // Cross-field checks run after the walk, so their errors are put back in place here.
    std::stable_sort(out.begin(), out.end(), [](const Error& a, const Error& b) {
        return std::pair(a.line, a.column) < std::pair(b.line, b.column);
    });
    return out;
}

std::string describe(const Node& node)
{
    if (node.is_scalar()) {
        // A message quotes what it refuses; a long value is cut, or each error of a value that an
        // alias repeats would copy all of it.
        constexpr std::size_t kShown = 100;
        std::string_view text = node.scalar();
        if (text.size() <= kShown) return "\"" + std::string(text) + "\"";
        std::size_t cut = kShown;
        while (cut > 0 && (static_cast<unsigned char>(text[cut]) & 0xC0) == 0x80) --cut;  // a UTF-8 character whole
        return "\"" + std::string(text.substr(0, cut)) + "...\" (" + std::to_string(text.size()) + " bytes)";
    }
    if (node.is_sequence()) return node.size() == 0 ? "an empty list" : "a list";
    if (node.is_mapping()) return node.size() == 0 ? "an empty mapping" : "a mapping";
    return "nothing";
}

Spot spot_of(const YAML::Mark& mark, std::string path)
{
    if (mark.is_null() || mark.line < 0) return Spot{1, 1, std::move(path)};
    return Spot{mark.line + 1, mark.column + 1, std::move(path)};
}

Spot spot_of(const Node& node, std::string path)
{
    if (node.line() < 0) return Spot{1, 1, std::move(path)};
    return Spot{node.line() + 1, node.column() + 1, std::move(path)};
}

std::string child_path(const std::string& path, std::string_view key)
{
    return path.empty() ? std::string(key) : path + "." + std::string(key);
}

std::string index_path(const std::string& path, std::size_t index)
{
    return path + "[" + std::to_string(index) + "]";
}

namespace {

// Levenshtein distance: the fewest single-character edits turning a into b.
std::size_t edit_distance(std::string_view a, std::string_view b)
{
    std::vector<std::size_t> row(b.size() + 1);
    for (std::size_t j = 0; j <= b.size(); ++j) row[j] = j;
    for (std::size_t i = 1; i <= a.size(); ++i) {
        std::size_t diagonal = row[0];
        row[0] = i;
        for (std::size_t j = 1; j <= b.size(); ++j) {
            std::size_t above = row[j];
            row[j] = std::min({row[j] + 1, row[j - 1] + 1, diagonal + (a[i - 1] == b[j - 1] ? 0 : 1)});
            diagonal = above;
        }
    }
    return row[b.size()];
}

std::string join(const std::vector<std::string_view>& words)
{
    std::string out;
    for (std::string_view w : words) out += (out.empty() ? "" : ", ") + std::string(w);
    return out;
}

}  // namespace

std::optional<std::string_view> closest_key(std::string_view key, const std::vector<std::string_view>& known)
{
    // Two edits cover a swapped pair ("wieght") or a missing and a wrong letter; the distance must
    // also stay below the key's length, or any short key would "resemble" any other.
    std::optional<std::string_view> best;
    std::size_t best_distance = 3;
    for (std::string_view candidate : known) {
        // The distance is at least the difference in length: skip what cannot be close, so a key
        // of megabytes costs nothing here (edit_distance takes the product of the lengths).
        std::size_t longer = std::max(key.size(), candidate.size()), shorter = std::min(key.size(), candidate.size());
        if (longer - shorter >= best_distance) continue;
        std::size_t d = edit_distance(key, candidate);
        if (d < best_distance && d < key.size()) {
            best = candidate;
            best_distance = d;
        }
    }
    return best;
}

std::optional<std::vector<Value>> list_items(Errors& errors, const Value& value, std::string_view what)
{
    if (!value.node.is_sequence()) {
        errors.expected(value, what);
        return std::nullopt;
    }
    std::vector<Value> items;
    items.reserve(value.node.size());
    for (std::size_t i = 0; i < value.node.size(); ++i) {
        Node item = value.node.item(i);
        Spot spot = spot_of(item, index_path(value.spot.path, i));
        if (!errors.visit(spot)) return std::nullopt;
        items.push_back(Value{item, std::move(spot)});
    }
    return items;
}

Mapping::Mapping(Errors& errors, const Value& value, std::vector<std::string_view> known)
    : errors_(errors), spot_(value.spot)
{
    if (!value.node.is_mapping()) {
        errors.expected(value, "a mapping");
        return;
    }
    is_mapping_ = true;
    fields_.reserve(value.node.size());
    // Iterate rather than look keys up: yaml-cpp keeps every pair of the mapping, so this is the
    // one place a key written twice (silently "last wins" elsewhere) can be caught.
    for (std::size_t i = 0; i < value.node.size(); ++i) {
        Node key_node = value.node.key(i), value_node = value.node.value(i);
        Spot key_spot = spot_of(key_node, spot_.path);
        if (!errors.visit(key_spot)) return;
        if (!key_node.is_scalar()) {
            errors.add(key_spot, "expected a key name, got " + describe(key_node));
            continue;
        }
        std::string key(key_node.scalar());
        key_spot.path = child_path(spot_.path, key);
        if (std::find(known.begin(), known.end(), key) == known.end()) {
            std::string message = "unknown key \"" + key + "\"";
            if (auto near = closest_key(key, known))
                message += "; did you mean \"" + std::string(*near) + "\"?";
            else
                message += "; expected one of: " + join(known);
            errors.add(key_spot, std::move(message));
            continue;
        }
        auto first =
            std::find_if(fields_.begin(), fields_.end(), [&](const Field& f) { return f.key == key; });
        if (first != fields_.end()) {
            errors.add(key_spot, "duplicate key \"" + key + "\" (first at line " +
                                     std::to_string(first->key_line) + ")");
            continue;
        }
        int key_line = key_spot.line;
        Spot value_spot = value_node.is_null() ? std::move(key_spot) : spot_of(value_node, std::move(key_spot.path));
        fields_.push_back(Field{std::move(key), key_line, Value{value_node, std::move(value_spot)}});
    }
}

const Value* Mapping::get(std::string_view key) const
{
    for (const Field& f : fields_)
        if (f.key == key) return &f.value;
    return nullptr;
}

const Value* Mapping::require(std::string_view key)
{
    const Value* value = get(key);
    // A node that is not a mapping was reported already; its "missing" keys would only be noise.
    if (!value && is_mapping_)
        errors_.add(Spot{spot_.line, spot_.column, child_path(spot_.path, key)},
                    "missing required key \"" + std::string(key) + "\"");
    return value;
}

}  // namespace fulcrum::config::detail
