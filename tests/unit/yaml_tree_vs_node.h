// Compares the config parser's YAML tree (src/config/yaml_tree.h) with the YAML::Node tree that
// YAML::Load builds of the same text, node by node: kind, scalar text, mark, items and pairs in
// order, and which nodes are one node (an alias and its anchor). Used by test_yaml_tree.cpp and
// by the config fuzzer (fuzz/fuzz_config.cpp), which checks it on every input it makes.
// yaml-cpp 0.7 has no node id to tell one YAML::Node from another, so each node met is marked
// through its tag (which the comparison does not read): the YAML::Node tree given is changed.
#pragma once

#include <yaml-cpp/yaml.h>

#include <cstdint>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "config/yaml_tree.h"

namespace fulcrum::test {

// "" if `tree` and `node` are the same graph, else where they first differ. Marks `node`'s tags.
inline std::string tree_vs_node(const config::detail::Node& tree, YAML::Node node)
{
    using config::detail::Node;
    // A YAML::Node met is tagged with the id of the tree node it was paired with: met again
    // (through an alias) it must pair with the same tree node, and a cycle is walked once. An
    // explicit stack: no recursion depth.
    const std::string seen = "\x01seen:";
    std::set<std::uint32_t> tree_seen;
    std::vector<std::pair<Node, YAML::Node>> todo{{tree, node}};
    while (!todo.empty()) {
        const Node t = todo.back().first;
        YAML::Node n = todo.back().second;  // a handle: its tag is the shared node's
        todo.pop_back();
        const std::string at = std::to_string(n.Mark().line + 1) + ":" + std::to_string(n.Mark().column + 1);
        if (!n.IsDefined()) return at + ": undefined YAML::Node";
        if (n.IsNull() != t.is_null()) return at + ": null in one tree only";
        if (n.IsNull() && n.Mark().is_null() && t.line() < 0) continue;  // both Node(): no document
        if (n.Mark().line != t.line() || n.Mark().column != t.column())
            return at + ": mark " + std::to_string(t.line() + 1) + ":" + std::to_string(t.column() + 1) +
                   " in the tree";
        if (n.Tag().rfind(seen, 0) == 0) {
            if (n.Tag() != seen + std::to_string(t.id())) return at + ": one YAML::Node, two tree nodes";
            continue;
        }
        if (!tree_seen.insert(t.id()).second) return at + ": one tree node, two YAML::Nodes";
        n.SetTag(seen + std::to_string(t.id()));
        if (n.IsScalar() != t.is_scalar() || n.IsSequence() != t.is_sequence() || n.IsMap() != t.is_mapping())
            return at + ": another kind of node";
        if (n.IsScalar() && n.Scalar() != t.scalar()) return at + ": scalar \"" + std::string(t.scalar()) + "\"";
        if (n.size() != t.size()) return at + ": " + std::to_string(t.size()) + " items or pairs in the tree";
        if (n.IsSequence())
            for (std::size_t i = 0; i < n.size(); ++i) todo.emplace_back(t.item(i), n[i]);
        if (n.IsMap()) {
            std::size_t i = 0;
            for (const auto& pair : n) {
                todo.emplace_back(t.key(i), pair.first);
                todo.emplace_back(t.value(i), pair.second);
                ++i;
            }
        }
    }
    return "";
}

}  // namespace fulcrum::test
