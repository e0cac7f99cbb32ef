// Private to the io layer: fixed tables of the mapped inputs and the unfinished output
// temporaries, written by MappedFile and AtomicFile and read by the signal handlers of
// signal_cleanup.hpp. Each entry is published with a release store of its key after its path is
// written, and withdrawn by clearing the key, so a handler (acquire loads only, no locks, no
// allocation) sees either a whole entry or none. A full table records nothing more: the handlers
// then only miss that file (a message without its name, a temporary left behind).
#pragma once

#include <cstddef>
#include <string>

namespace levattn::io::detail {

// The map [base, base + size) of `path`; returns the slot to release, or −1 when the table is full.
int record_map(const void* base, std::size_t size, const std::string& path);
void forget_map(int slot);

// The temporary file `path` (to be removed if a signal ends the process); slot as above.
int record_temporary(const std::string& path);
void forget_temporary(int slot);

}  // namespace levattn::io::detail
