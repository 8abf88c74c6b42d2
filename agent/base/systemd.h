// The service manager's side channels, spoken without libsystemd:
//   Notify: sd_notify(3) datagrams on $NOTIFY_SOCKET (READY=1, RELOADING=1,
//           STOPPING=1, WATCHDOG=1, STATUS=...);
//   WatchdogIntervalMs: $WATCHDOG_USEC when $WATCHDOG_PID is unset or ours;
//   StderrIsJournal: $JOURNAL_STREAM names our stderr, so log lines may carry
//           sd-daemon(3) priority prefixes ("<4>").
// Outside systemd every call is a no-op or answers "no".
//
// Thread safety: all functions may be called from any thread.
#pragma once

#include <cstdint>
#include <string>

namespace strata::systemd {

// Sends one notification; false when not under a service manager or the
// datagram could not be sent.
bool Notify(const std::string& state);
// "MONOTONIC_USEC=..." for RELOADING=1 (systemd >= 253 asks for it).
std::string MonotonicUsec();
// The watchdog interval the manager expects pings within; 0 = none.
int64_t WatchdogIntervalMs();
bool StderrIsJournal();

}  // namespace strata::systemd
