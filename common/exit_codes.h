// Process exit statuses: a documented contract (aiowsgi-master(8), EXIT STATUS).
// The master never respawns a worker that exits with kAppLoadError or kBootError at first start.
#pragma once

namespace aiowsgi {

inline constexpr int kExitOk = 0;
inline constexpr int kExitConfigError = 1;    // master: bad config or command line
inline constexpr int kExitBindError = 2;      // master: a listener could not be bound
inline constexpr int kExitAppLoadError = 3;   // worker: the app could not be imported
inline constexpr int kExitBootError = 4;      // worker: the interpreter or loop failed to start
inline constexpr int kExitPidfileLocked = 5;  // master: another live master locks the pidfile

}  // namespace aiowsgi
