// Eligibility checks (hp-check): one small function per rule, each producing a Check.
#pragma once

#include "doc/document.hpp"
#include "package/container.hpp"
#include "proc/process.hpp"

#include <string>
#include <vector>

namespace hp::check {

struct Check {
    std::string id;     // "host.kernel", "process.traced", "package.sites", ...
    std::string status; // "pass", "warn", "fail", "skip"
    std::string detail;
    std::string hint; // what to change, when not pass
};

doc::json to_json(const Check& c);

std::vector<Check> host_checks();
// The process exists and can be patched by us. Stops its threads briefly only to read
// seccomp filters when it has any.
std::vector<Check> process_checks(proc::Pid pid);
struct PackageOptions {
    bool allow_unsigned = false;
    std::string keys_dir;
};
// The signature, then the checks of hp-apply's plan (a dry run), each passing, failing
// or skipped (when the plan stopped before it, or when a process check it needs in
// `process` failed). An error of the plan that no check owns is package.plan.
std::vector<Check> package_checks(proc::Pid pid, const package::Package& pkg,
                                  const std::string& package_sha256, const PackageOptions& opt,
                                  const std::vector<Check>& process);

} // namespace hp::check
