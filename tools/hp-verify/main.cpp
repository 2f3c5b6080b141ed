// hp-verify: compare a process's memory with the bytes it should hold.
#include "common/file.hpp"
#include "doc/document.hpp"
#include "doc/upstream.hpp"
#include "patch/verify.hpp"

#include <CLI/CLI.hpp>
#include <fmt/format.h>

using hp::doc::json;

int main(int argc, char** argv) {
    hp::doc::Tool tool("verify");
    CLI::App app{"Verify the patch sites of a process: every patch recorded in it, or the sites of "
                 "an upstream "
                 "hotpatch.apply/1 or hotpatch.inspect/1 document read from stdin (-).",
                 "hp-verify"};
    app.set_version_flag("--version", std::string(hp::doc::version()));
    int pid = 0;
    std::string input;
    app.add_option("-p,--pid", pid, "The process")->required()->check(CLI::PositiveNumber);
    app.add_option("INPUT", input, "- to read an upstream document from stdin")
        ->check(CLI::IsMember({"-"}));
    tool.add_format_option(app);

    auto body = [&]() -> int {
        json& doc = tool.doc();
        bool ok;
        if (input == "-") {
            auto up = hp::doc::parse_upstream(hp::read_stdin(hp::doc::kMaxUpstreamSize));
            ok = hp::patch::verify_document(pid, up, doc);
        } else {
            ok = hp::patch::verify_process(pid, doc);
        }
        if (!ok) {
            const auto& problems = doc["problems"];
            std::string first =
                problems.empty() ? "verification failed" : problems[0].get<std::string>();
            if (problems.size() > 1) first += fmt::format(" (and {} more)", problems.size() - 1);
            throw hp::Error(hp::ErrorCode::VerifyMismatch, first);
        }
        return 0;
    };
    auto text = [](const json& doc) {
        std::string out;
        if (doc.contains("patches")) {
            if (doc["patches"].empty())
                out += fmt::format("process {}: no patches\n", doc["pid"].get<int>());
            for (const json& p : doc["patches"]) {
                out += fmt::format(
                    "{} {} ({})\n", p["id"].get<std::string>(), p["state"].get<std::string>(),
                    p.contains("time") ? p["time"].get<std::string>()
                                       : p.value("interrupted", std::string("interrupted apply")));
                for (const json& s : p["sites"])
                    out += fmt::format("  {:<24} {} {}\n", s["function"].get<std::string>(),
                                       s["address"].get<std::string>(),
                                       s["status"].get<std::string>());
            }
        } else {
            for (const json& s : doc["sites"])
                out += fmt::format("  {:<24} {} {}\n", s["function"].get<std::string>(),
                                   s.value("address", std::string("-")),
                                   s["status"].get<std::string>());
        }
        return out;
    };
    return tool.run(app, argc, argv, body, text);
}
