// Output files are written through a temporary beside them and renamed into
// place once complete: a reader (a pipeline watching the folder, another
// consumer) sees the old file or the new one, never half of one, and a write
// that fails (a full disk, a file size limit) leaves what was there.
#pragma once

#include <functional>
#include <initializer_list>
#include <string>
#include <string_view>

namespace cpipc::io {

// Calls write(tmp) with a fresh path in `path`'s directory that ends in
// `path`'s extension (encoders choose by extension), then renames it over
// `path`; on any exception removes it and rethrows, with the temporary's name
// in an Error's message replaced by `path`. A `path` that exists and is not a
// regular file (/dev/stdout, a FIFO) or is a symbolic link is written in
// place. A process killed mid-write leaves its temporary
// (".<name>.cpipc-<pid>-<n><ext>").
void write_replacing(const std::string& path, const std::function<void(const std::string& tmp)>& write);

// `parts`, one after the other, as the file `path`, through write_replacing.
// Throws Error(io) naming `path` and the system's reason.
void write_file(const std::string& path, std::initializer_list<std::string_view> parts);

}  // namespace cpipc::io
