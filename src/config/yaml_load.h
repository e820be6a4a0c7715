// Reading the text of a config file into one YAML document, within bounds: the tree of a document
// is built as yaml-cpp's event parser reads it (yaml_tree.h: about 20 bytes a node plus the
// text), counting nodes and documents on the way, and yaml-cpp 0.7 (Debian 12) never ends on some
// inputs. A config file must not make fulcrumd or --check use unbounded memory (README:
// Configuration reference > Limits).
#pragma once

#include <cstddef>
#include <optional>
#include <string>

#include "config/yaml_tree.h"
#include "config/yaml_walk.h"

namespace fulcrum::config::detail {

// The largest config file read: about twice a file at the data plane's limits (4095 services
// with 131071 backends is 4.4 MiB in compact flow style), so every config the maps can hold fits.
// It bounds the event pass below: yaml-cpp holds about 270 bytes per token while it scans a flow
// collection that may still turn out to be a key ("[0,0,...]" at the start of a line), so 8 MiB
// of that costs about 1.1 GB for 20 s before it is refused (measured); other shapes far less.
constexpr std::size_t kMaxConfigBytes = 8 * 1024 * 1024;

// The most YAML nodes (scalars, lists, mappings, aliases; a mapping's keys count) one file may
// have, which bounds the tree built (and bounded YAML::Load's tree, about 500 bytes a node, before
// yaml_tree.h). The compact file at the data plane's limits above has about 450,000.
constexpr std::size_t kMaxYamlNodes = 1'000'000;

// The tree of the one document of `text`, or nothing after adding an error: text over
// kMaxConfigBytes, more than kMaxYamlNodes nodes, more than one document, or a token yaml-cpp 0.7
// cannot place (a ',' where a document starts: YAML::LoadAll would loop forever there, adding
// empty documents until memory runs out). A file with no content gives a tree whose root is a null
// Node(). YAML syntax errors are thrown, as by YAML::Load (YAML::ParserException, with the mark).
// Files in the subset of yaml_fast.h are read by that scanner, to the same tree; the rest by
// yaml-cpp (load_one_document_yaml_cpp).
std::optional<Tree> load_one_document(const std::string& text, Errors& errors);

// The same through yaml-cpp's event parser only, whatever the file: what load_one_document does
// when the fast scanner gives up. Tests and the reload bench compare the two paths with it.
std::optional<Tree> load_one_document_yaml_cpp(const std::string& text, Errors& errors);

}  // namespace fulcrum::config::detail
