#pragma once
// Running shell commands from tests (the sandbox script, mkdir, ...): shared
// by the fault and fleet suites.

#include <sys/wait.h>

#include <cstddef>
#include <cstdio>
#include <string>

namespace testsupport {

struct CommandResult {
    int status = -1;  // the exit status, or -1 when it did not exit normally
    std::string output;
};

// Runs a shell command, its stderr with its stdout.
inline CommandResult run_command(const std::string& command) {
    CommandResult r;
    FILE* p = ::popen((command + " 2>&1").c_str(), "r");
    if (!p) return r;
    char buffer[4096];
    for (std::size_t n; (n = std::fread(buffer, 1, sizeof buffer, p)) > 0;) r.output.append(buffer, n);
    const int status = ::pclose(p);
    r.status = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
    return r;
}

inline std::string shell_quote(const std::string& s) {
    std::string q = "'";
    for (char ch : s) q += ch == '\'' ? std::string("'\\''") : std::string(1, ch);
    return q + "'";
}

}  // namespace testsupport
