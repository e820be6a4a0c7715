// Every map a program uses, read whole, for "the maps are exactly as before" assertions: each
// entry's key and value bytes, and for a map of maps the contents of every inner map too.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

namespace fulcrum::test {

struct MapDump {
    std::string name;
    std::uint32_t type = 0;
    std::map<std::vector<std::uint8_t>, std::vector<std::uint8_t>> entries;  // key -> value bytes
    // Plain and per-CPU arrays instead: every value, in index order (131072 backends are one
    // vector, not 131072 map entries: the dumps run hundreds of times).
    std::vector<std::uint8_t> dense;
    std::uint32_t value_size = 0;
    // Map of maps: the inner map each key refers to (by the key), read whole. Its value in
    // `entries` is the inner map's id.
    std::map<std::vector<std::uint8_t>, std::map<std::vector<std::uint8_t>, std::vector<std::uint8_t>>> inner;
    bool operator==(const MapDump&) const = default;
};

// The maps of the program `program_fd`, by name. Throws std::runtime_error if one cannot be read.
std::map<std::string, MapDump> dump_program_maps(int program_fd);

// A new descriptor of the map called `name` among the maps of `program_fd` (the caller closes
// it). Throws std::runtime_error if the program has no such map.
int map_fd_by_name(int program_fd, const std::string& name);

// "" if equal; else the first difference, for a failure message (map, key, values in hex).
std::string first_difference(const std::map<std::string, MapDump>& a, const std::map<std::string, MapDump>& b);

}  // namespace fulcrum::test
