// hp-apply: apply a package to a running process, or revert one, all-or-nothing.
#include "common/crypto.hpp"
#include "common/file.hpp"
#include "doc/document.hpp"
#include "doc/upstream.hpp"
#include "patch/apply.hpp"

#include <CLI/CLI.hpp>
#include <fmt/format.h>

using hp::doc::json;

int main(int argc, char** argv) {
    hp::doc::Tool tool("apply");
    CLI::App app{"Apply a hotpatch package to a running process (or --revert one), all-or-nothing.",
                 "hp-apply"};
    app.set_version_flag("--version", std::string(hp::doc::version()));
    int pid = 0;
    std::string input, revert_id, keys_dir;
    unsigned timeout_ms = 5000;
    bool dry_run = false, allow_unsigned = false;
    app.add_option("-p,--pid", pid,
                   "The process to patch (with -, default: the check document's process)")
        ->check(CLI::PositiveNumber);
    app.add_option("PACKAGE", input,
                   "The package file, or - to read a hotpatch.check/1 document from stdin (it "
                   "names the process)");
    app.add_option("--revert", revert_id, "Revert the applied patch with this id")->type_name("ID");
    app.add_flag("--dry-run", dry_run, "Plan only: check everything, change nothing");
    app.add_option("--timeout", timeout_ms,
                   "Bound for the job in milliseconds (default 5000); undoing after a timeout may "
                   "take a few seconds more (man hp-apply)")
        ->type_name("MS")
        ->check(CLI::Range(1u, 3'600'000u));
    app.add_flag("--allow-unsigned", allow_unsigned,
                 "Apply an unsigned package or one signed by an untrusted key");
    app.add_option(
           "--keys", keys_dir,
           "Trusted public keys directory (default $HOTPATCH_KEYS, else /etc/hotpatch/keys)")
        ->type_name("DIR");
    std::string consistency = "stack";
    app.add_option("--consistency", consistency,
                   "entry: no thread inside a patch site; stack (default, fails safe: refuses when "
                   "in doubt): no "
                   "thread executing in or returning into an old function (revert: a replacement)")
        ->type_name("MODE")
        ->check(CLI::IsMember({"entry", "stack"}));
    tool.add_format_option(app);

    auto run = [&]() -> int {
        json& doc = tool.doc();
        // Only a check document names the process by itself; everything else needs -p.
        if (pid == 0 && input != "-")
            throw hp::Error(hp::ErrorCode::Usage,
                            "give the process with -p PID (or read a check document with -)");
        if (pid != 0) doc["pid"] = pid;
        auto timeout = std::chrono::milliseconds(timeout_ms);
        auto mode =
            consistency == "entry" ? hp::patch::Consistency::Entry : hp::patch::Consistency::Stack;
        doc["consistency"] = consistency;
        hp::patch::Outcome out;
        if (!revert_id.empty()) {
            if (!input.empty() || dry_run)
                throw hp::Error(hp::ErrorCode::Usage, "--revert takes no PACKAGE and no --dry-run");
            doc["action"] = "revert";
            doc["id"] = revert_id;
            out = hp::patch::revert(pid, revert_id, timeout, mode);
            doc["unmapped"] = out.unmapped;
            if (!out.unmapped) doc["kept_mapped_because"] = out.keep_reason;
        } else {
            if (input.empty())
                throw hp::Error(hp::ErrorCode::Usage, "no PACKAGE given (or --revert ID)");
            hp::patch::ApplyOptions opt;
            opt.pid = pid;
            opt.timeout = timeout;
            opt.dry_run = dry_run;
            opt.allow_unsigned = allow_unsigned;
            opt.consistency = mode;
            opt.keys_dir = keys_dir;
            std::string path = input;
            std::string checked_sha;
            if (input == "-") {
                // Validated whole (hp::doc::interpret_check) before anything else is read.
                auto up = hp::doc::parse_upstream(hp::read_stdin(hp::doc::kMaxUpstreamSize));
                hp::doc::CheckedPackage checked = hp::doc::interpret_check(up, pid);
                pid = opt.pid = checked.pid;
                doc["pid"] = pid;
                path = checked.package_path;
                checked_sha = checked.package_sha256;
                opt.expected = hp::proc::Instance{checked.pid, checked.start_time};
            }
            hp::Bytes file = hp::read_file(path, std::size_t{512} << 20);
            std::string sha = hp::sha256_hex(file);
            if (!checked_sha.empty() && sha != checked_sha)
                throw hp::Error(hp::ErrorCode::CheckFailed,
                                fmt::format("{} changed since it was checked", path));
            hp::package::Package pkg;
            try {
                pkg = hp::package::read_package(file);
            } catch (const hp::Error& e) {
                throw hp::Error(e.code(), path + ": " + e.what());
            }
            doc["action"] = dry_run ? "dry-run" : "apply";
            doc["id"] = pkg.manifest.id;
            doc["package"] = {{"path", path}, {"sha256", sha}};
            std::vector<std::string> repaired;
            opt.repaired = &repaired;
            try {
                out = hp::patch::apply(pkg, sha, opt);
            } catch (const hp::Error&) {
                // A refusal after the repair: what was repaired is still done.
                if (!repaired.empty()) doc["repaired"] = repaired;
                throw;
            }
            doc["superseded"] = out.superseded;
        }
        doc["repaired"] = out.repaired;
        doc["start_time"] = out.record.instance.start_time;
        doc["timings"] = {{"plan_us", out.timings.plan_us},
                          {"prepare_us", out.timings.prepare_us},
                          {"switch_us", out.timings.switch_us},
                          {"freeze_us", out.timings.freeze_us},
                          {"total_us", out.timings.total_us},
                          {"attempts", out.timings.attempts},
                          {"max_attempt_freeze_us", out.timings.max_attempt_freeze_us}};
        json rec = hp::patch::to_json(out.record);
        if (dry_run) rec["state"] = "planned";
        doc["record"] = rec;
        return 0;
    };
    // A refusal tells how often, and how long at most, the threads were held.
    auto body = [&]() -> int {
        try {
            return run();
        } catch (const hp::patch::Refused& e) {
            tool.doc()["timings"] = {{"attempts", e.attempts},
                                     {"max_attempt_freeze_us", e.max_attempt_freeze_us}};
            throw;
        }
    };
    auto text = [](const json& doc) {
        std::string action = doc["action"].get<std::string>();
        const json& r = doc["record"];
        std::string out;
        if (action == "revert")
            out = fmt::format(
                "reverted '{}' in process {} (freeze {} us){}\n", doc["id"].get<std::string>(),
                doc["pid"].get<int>(), doc["timings"]["freeze_us"].get<std::uint64_t>(),
                doc["unmapped"].get<bool>()
                    ? ", code unmapped"
                    : "; code kept mapped: " + doc["kept_mapped_because"].get<std::string>());
        else if (action == "dry-run")
            out = fmt::format("dry run: '{}' can be applied to process {}; it would write:\n",
                              doc["id"].get<std::string>(), doc["pid"].get<int>());
        else
            out = fmt::format("applied '{}' to process {} (freeze {} us, total {} us)\n",
                              doc["id"].get<std::string>(), doc["pid"].get<int>(),
                              doc["timings"]["freeze_us"].get<std::uint64_t>(),
                              doc["timings"]["total_us"].get<std::uint64_t>());
        bool revert = action == "revert";
        for (const json& s : r["sites"]) {
            std::string fn = s["function"].get<std::string>();
            if (fn.empty()) fn = s["function_address"].get<std::string>();
            out += fmt::format("  {} {} at {}: {} -> {}\n", s["module"].get<std::string>(), fn,
                               s["address"].get<std::string>(),
                               s[revert ? "new" : "original"].get<std::string>(),
                               s[revert ? "original" : "new"].get<std::string>());
        }
        return out;
    };
    return tool.run(app, argc, argv, body, text);
}
