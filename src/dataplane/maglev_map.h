// One Maglev table in the kernel: an inner array of maglev_tables in the layout of xdp/abi.h
// (fulcrum_maglev_chunk: N slots per array entry, BPF_F_MMAPABLE). Made and read back only here,
// so fulcrumd, the tests and the bench cannot disagree on the layout.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "util/status.h"

namespace fulcrum::dataplane {

// A new inner array holding `slots` (a backend id per slot, 0 = none), referenced by nothing yet:
// the caller owns the descriptor. Filled by one copy of the slots through a writable mmap, which
// is gone again when this returns. `name` is the map's name (cut to the kernel's limit); `what`
// names the table in errors ("the maglev table of service 7").
Result<int> create_maglev_table(const std::string& name, std::span<const std::uint32_t> slots,
                                const std::string& what);

// The first `table_size` slots of the inner array `fd`, read through a read-only mmap (no
// capability needed). Fails, naming `what`, when the array is not of this layout and size or an
// entry past the table (the last chunk's padding) is not 0.
Result<std::vector<std::uint32_t>> read_maglev_table(int fd, std::uint32_t table_size, const std::string& what);

// Bytes of array values a table of `slots` occupies (value_size x max_entries): 4 per slot, plus
// the padding of the last chunk. (The kernel adds one page of header and rounds up to pages.)
std::size_t maglev_table_value_bytes(std::uint32_t slots);

}  // namespace fulcrum::dataplane
