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

// "" if two light trees are the same, node for node: kind, scalar text, mark, items and pairs in
// order (the fast scanner's tree against the yaml-cpp event path's, yaml_fast.h). Trees without
// aliases only (the fast scanner has none): a node shared by two parents is compared twice. An
// explicit stack: no recursion depth.
inline std::string tree_vs_tree(const config::detail::Node& ours, const config::detail::Node& theirs)
{
    using config::detail::Node;
    std::vector<std::pair<Node, Node>> todo{{ours, theirs}};
    while (!todo.empty()) {
        const auto [a, b] = todo.back();
        todo.pop_back();
        const std::string at = std::to_string(b.line() + 1) + ":" + std::to_string(b.column() + 1);
        if (a.line() != b.line() || a.column() != b.column())
            return at + ": mark " + std::to_string(a.line() + 1) + ":" + std::to_string(a.column() + 1) + " in ours";
        if (a.is_null() != b.is_null() || a.is_scalar() != b.is_scalar() || a.is_sequence() != b.is_sequence() ||
            a.is_mapping() != b.is_mapping())
            return at + ": another kind of node";
        if (a.scalar() != b.scalar()) return at + ": scalar \"" + std::string(a.scalar()) + "\" in ours";
        if (a.size() != b.size()) return at + ": " + std::to_string(a.size()) + " items or pairs in ours";
        for (std::size_t i = 0; i < a.size(); ++i) {
            if (a.is_sequence()) {
                todo.emplace_back(a.item(i), b.item(i));
            } else {
                todo.emplace_back(a.key(i), b.key(i));
                todo.emplace_back(a.value(i), b.value(i));
            }
        }
    }
    return "";
}

// The nodes of a tree without aliases, as load_one_document counts them (keys included); 0 for
// Node() (no document).
inline std::size_t count_nodes(const config::detail::Node& root)
{
    if (root.line() < 0) return 0;
    std::size_t n = 0;
    std::vector<config::detail::Node> todo{root};
    while (!todo.empty()) {
        const config::detail::Node node = todo.back();
        todo.pop_back();
        ++n;
        for (std::size_t i = 0; i < node.size(); ++i) {
            if (node.is_sequence()) {
                todo.push_back(node.item(i));
            } else {
                todo.push_back(node.key(i));
                todo.push_back(node.value(i));
            }
        }
    }
    return n;
}

}  // namespace fulcrum::test
