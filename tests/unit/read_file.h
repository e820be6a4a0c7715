// The whole of a test's input file as bytes; a file that cannot be opened fails the test case.
#pragma once

#include <catch2/catch.hpp>
#include <fstream>
#include <sstream>
#include <string>

namespace fulcrum::test {

inline std::string read_file(const std::string& path)
{
    std::ifstream in(path, std::ios::binary);
    REQUIRE(in);
    std::ostringstream out;
    out << in.rdbuf();
    return out.str();
}

}  // namespace fulcrum::test
