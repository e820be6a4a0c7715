// A fast path for reading a config file: a scanner of its own for the plain block-YAML subset config
// files are written in, building the same light tree (yaml_tree.h) that yaml-cpp's event parser
// builds, with the same marks. yaml-cpp's scanner costs about 1.3 s of CPU on a file of 1000
// services x 100 backends (5 MB); this one a few tens of milliseconds.
//
// It never decides anything yaml-cpp would decide differently: anything outside the subset, or
// that it is not sure of, makes it give up (nothing returned), and load_one_document then reads
// the file with yaml-cpp exactly as before, so behaviour and error messages stay yaml-cpp's.
//
// The subset (README: Configuration reference > How the file is read):
// - one document, optionally after a leading "---" line; its top node a block mapping at column 0;
// - block mappings of "key: value" lines and block sequences of "- item" lines, each level indented
//   with spaces (a sequence may sit at its key's column), "- key: value" starting a mapping;
// - keys and values as plain scalars on one line, 'single-quoted' ('' for a quote) and
//   "double-quoted" without backslash escapes, each on one line; ~, null, Null, NULL and an empty
//   value are null;
// - flow sequences and mappings ([a, b], {k: v, k2: [x]}), over several lines if each line break
//   follows '[', '{' or ',';
// - comments after a space or on their own lines, blank lines, CRLF line ends, UTF-8 text inside
//   scalars and comments.
// It gives up on: anchors, aliases, tags, '?' keys, block scalars (| >), plain scalars continued on
// the next line, escapes, tabs, control characters, a BOM or other encodings, directives, "---" or
// "..." later in the file, empty or trailing flow entries, "a: b: c", a key over 1000 bytes, more
// than kMaxFastDepth levels of nesting, more than kMaxYamlNodes nodes, and every syntax error.
#pragma once

#include <cstddef>
#include <optional>
#include <string_view>

#include "config/yaml_tree.h"

namespace fulcrum::config::detail {

// Deeper nesting (block and flow levels together) is left to yaml-cpp, which refuses 500 levels.
constexpr std::size_t kMaxFastDepth = 64;

struct FastTree {
    Tree tree;
    std::size_t nodes = 0;  // as load_one_document counts them (keys, values, lists, mappings)
};

// The tree of `text` if it is in the subset above, else nothing. Linear in the text's size; no
// recursion deeper than kMaxFastDepth.
std::optional<FastTree> fast_tree(std::string_view text);

}  // namespace fulcrum::config::detail
