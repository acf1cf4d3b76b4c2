// Deliberate faults, selected on the kernel command line (nestor.selftest=pf|gp|ud|write-text|exec-data|panic|assert),
// so boot tests can prove that exception reporting and panics stop the machine with a failure.
#pragma once

namespace nestor::x86 {

// Runs the self-test named on the command line, if any; returns if none was asked for.
// An unknown name is reported and stops the machine with a failure status.
void run_selftest(const char* cmdline);

}  // namespace nestor::x86
