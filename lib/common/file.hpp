// Whole-file reads and atomic writes, with errors that name the file.
#pragma once

#include "common/bytes.hpp"

#include <string>

namespace hp {

// Throws Error(Io) naming the path and errno text; `limit` guards against reading
// something huge by mistake (a device, /proc/kcore).
Bytes read_file(const std::string& path, std::size_t limit = std::size_t{1} << 30);
// Reads all of standard input (same limit).
Bytes read_stdin(std::size_t limit = std::size_t{64} << 20);
// Writes to a temporary file beside `path`, fsyncs, renames over `path`: readers never see
// a half-written package. `mode` applies to the new file.
void write_file_atomic(const std::string& path, ByteView data, unsigned mode = 0644);

} // namespace hp
