// What a program built on the io layer may do when a signal ends it: the io layer records every
// file it has memory-mapped for reading (MappedFile) and every output temporary not yet renamed
// onto its target (AtomicFile), in fixed tables a signal handler can read; this installs the
// handlers that use them. The library never installs them itself (a host program such as
// Python owns its signals); the command-line tools do, first thing in main.
//
//  * SIGBUS at an address inside a mapped input — the file shrank while being read (the limit of
//    memory-mapped reading): "<program>: error: <path>: the file changed while being
//    read (…)" on stderr, every recorded temporary removed, exit status 3 (bad input data). SIGBUS
//    anywhere else, or sent by kill(2): temporaries removed, then the default action.
//  * SIGINT, SIGTERM, SIGHUP (unless ignored when installed, as under nohup): every recorded
//    temporary removed, then the default action (the status a shell reports as 128 + signal). A target is renamed into
//    place whole or not at all, so no signal leaves a partial output file.
//  * SIGXFSZ (a file-size limit, ulimit -f) is ignored, so that the write fails with EFBIG and the
//    program reports it ("File too large") and removes the temporary like any failed write.
// SIGKILL cannot be caught: the temporary ".<name>.tmp.XXXXXX" then stays beside the target, which
// is still either the previous complete file or absent.
#pragma once

namespace levattn::io {

// Installs the handlers above for this process. `program` (a string literal) prefixes the message.
void install_signal_cleanup(const char* program);

}  // namespace levattn::io
